"""Outbound channels behind one port (``base.NotificationChannel``): WhatsApp Cloud API,
an HTTP SMS provider with DLT template ids, and SMTP e-mail."""

"""Notifications: report-ready, critical-value, payment and appointment messages to patients
and doctors on WhatsApp (Cloud API), SMS (DLT) and e-mail, with consent, delivery tracking,
fallback, rate limits and retries. An edge module: it reacts to other modules' events and is
imported by none of them.
"""

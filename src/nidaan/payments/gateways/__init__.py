"""Payment gateway adapters behind one port (``base.PaymentGateway``)."""

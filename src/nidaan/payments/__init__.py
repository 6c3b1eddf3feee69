"""Gateway payments: links, UPI QR codes, webhooks, refunds and reconciliation."""

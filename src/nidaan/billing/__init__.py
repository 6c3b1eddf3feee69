"""Billing: payments taken at the counter (invoices, GST and payment links come later)."""

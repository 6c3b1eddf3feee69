"""Idempotency-Key support for POST endpoints that clients may retry."""

"""Organisations (tenants) and their branches: central labs and collection centres."""

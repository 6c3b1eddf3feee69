"""Nidaan: an open-source laboratory information system for Indian diagnostic labs."""

__version__ = "0.1.0"

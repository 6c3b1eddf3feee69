"""Samples (tubes) with their state machine, barcode labels and transport manifests."""

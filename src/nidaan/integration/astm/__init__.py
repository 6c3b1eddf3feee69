"""ASTM E1381 (low-level link) and E1394 (records) for laboratory analyzers."""

"""Offline-first sync: change capture, op apply by merge class, pull, conflicts (docs/sync.md)."""

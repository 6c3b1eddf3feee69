"""Seeded randomised acceptance harness for offline sync (spec §4, issue 5)."""

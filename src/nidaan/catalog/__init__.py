"""Test catalogue: tests, panels, reference ranges, prices."""

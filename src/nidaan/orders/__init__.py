"""Orders: what was requested for a patient, and the tests in it."""

"""Results: entry, flags, delta checks, critical alerts, verification and corrections."""

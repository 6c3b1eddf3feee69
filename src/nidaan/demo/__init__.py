"""Demo lab data for `make run`: exists only in demo mode."""

"""Patients: registration, search, duplicate flags and merge."""

"""Autoverification (CLSI AUTO10 style): ordered, data-driven rule sets per test, an
evaluation record for every result, simulation over history, and a learned second opinion
that can only hold a result. An edge module: it acts through results' service functions."""

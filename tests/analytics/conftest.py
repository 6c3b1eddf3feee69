"""The results tests' lab (staff per role, a central lab branch) for the dashboard queries."""

from tests.results.conftest import lab

__all__ = ["lab"]

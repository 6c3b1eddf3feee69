"""Observability tests reuse the job app and clean-up fixtures of the events tests."""

from tests.events.conftest import Cleanup, cleanup, job_app_open

__all__ = ["Cleanup", "cleanup", "job_app_open"]

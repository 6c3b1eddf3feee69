"""Ambient per-request values (request id) that logs and audit entries pick up."""

from contextvars import ContextVar

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)


def current_request_id() -> str | None:
    """The id of the HTTP request or job being handled, if any."""
    return request_id_var.get()

"""structlog setup: request ids on every line, JSON outside demo mode, secrets and PII redacted."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

from nidaan.config import Settings
from nidaan.kit import tracing

REDACTED = "[redacted]"
SENSITIVE_KEY = re.compile(
    r"pass(word)?|secret|token|authorization|api[_-]?key|cookie|mobile|phone|aadhaar|abha|"
    r"encryption|blind_index|credential",
    re.IGNORECASE,
)
# Values that look like Indian mobiles or Aadhaar numbers are masked wherever they appear.
_AADHAAR = re.compile(r"(?<!\d)[2-9]\d{3}([ -]?)\d{4}\1\d{4}(?!\d)")
_MOBILE = re.compile(r"(?<![\d])(?:\+?91[ -]?|0)?[6-9]\d{4}[ -]?\d{5}(?!\d)")
_BEARER = re.compile(r"(?i)bearer\s+[a-z0-9._~+/=-]+")
_API_KEY = re.compile(r"nid_[0-9a-f]{12}_[A-Za-z0-9_-]+")


def scrub_text(text: str) -> str:
    text = _BEARER.sub("Bearer " + REDACTED, text)
    text = _API_KEY.sub(REDACTED, text)
    text = _AADHAAR.sub(REDACTED, text)
    return _MOBILE.sub(REDACTED, text)


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return scrub_text(value)
    if isinstance(value, dict):
        return {
            k: REDACTED if SENSITIVE_KEY.search(str(k)) else _scrub(v) for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_scrub(v) for v in value]
    return value


def redact_processor(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key in {"timestamp", "level", "logger", "request_id", "trace_id", "span_id"}:
            continue
        if SENSITIVE_KEY.search(key):
            event_dict[key] = REDACTED
        else:
            event_dict[key] = _scrub(event_dict[key])
    return event_dict


def trace_processor(
    _: Any, __: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """Add the trace and span ids of the current span (only when tracing is on)."""
    ids = tracing.current_ids()
    if ids is not None:
        event_dict["trace_id"], event_dict["span_id"] = ids
    return event_dict


def _is_terminal(stream: Any) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def configure_logging(settings: Settings) -> None:
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        trace_processor,
        redact_processor,
    ]
    renderer: Any = (
        structlog.processors.JSONRenderer()
        if settings.json_logs
        # Colour codes only on a terminal: a log file or pipe gets plain text.
        else structlog.dev.ConsoleRenderer(colors=_is_terminal(sys.stderr))
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level.upper())
    # uvicorn's access log repeats what our request middleware logs, with query strings.
    logging.getLogger("uvicorn.access").handlers[:] = []
    logging.getLogger("uvicorn.access").propagate = False
    for name in ("uvicorn", "uvicorn.error"):
        logging.getLogger(name).handlers[:] = []
        logging.getLogger(name).propagate = True

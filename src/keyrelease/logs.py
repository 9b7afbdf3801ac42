"""Logging set-up: text for people, one JSON object per line for collectors; every record
carries the id of the HTTP request it was written under (``-`` outside a request).

The request id is set by :class:`keyrelease.request_id.RequestId` in a context variable, so it
follows the request through every ``await`` without being passed around.
"""

from __future__ import annotations

import contextvars
import json
import logging
from datetime import UTC, datetime

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("keyrelease_request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """``{"time": …, "level": …, "logger": …, "message": …, "request_id": …}`` on one line,
    plus ``exception`` when there is one."""

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": getattr(record, "request_id", request_id.get()),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, ensure_ascii=False, default=str)


def configure(log_format: str = "text", level: int = logging.INFO) -> logging.Handler:
    """Route every log record to stderr in ``log_format`` (``text`` or ``json``); returns the handler."""
    handler = logging.StreamHandler()
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # Tortoise announces every init and close at INFO ("Tortoise-ORM shutdown" twice per
    # command, one before "started"): its warnings and errors are enough.
    logging.getLogger("tortoise").setLevel(max(level, logging.WARNING))
    return handler

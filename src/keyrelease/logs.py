"""Logging set-up: text for people, one JSON object per line for collectors; every record
carries the id of the HTTP request it was written under (``-`` outside a request).

The request id is set by :class:`keyrelease.request_id.RequestId` in a context variable, so it
follows the request through every ``await`` without being passed around.

What the formatters write, whoever logged the record (keyrelease, uvicorn, Tortoise, a plugin):

- **One record, one line.** CR, LF and every other control character (C0, DEL, C1, the
  Unicode line and paragraph separators, bidirectional overrides) in a message are written
  as visible escapes (``\\n``, ``\\x1b``, ``\\u2028``), so text a client sent can neither start
  a forged log line nor drive the reader's terminal. Only a traceback spans lines (text
  format; in JSON it is one string field).
- **Tracebacks without exception messages.** An exception is written as its type and its
  stack frames (file, line, function, source line), for every exception in the chain; its
  message is withheld. On the request path a message can quote what the client sent (an
  emailed code, a one-time password, a client secret, an SQL parameter), and no list of
  secrets to redact could be complete — withholding fails closed. The frames locate the bug;
  the request id finds the request.
- **Access lines without query strings.** uvicorn's access line names the path only: no
  endpoint here reads a query string, so one can only carry something a client should not
  have sent there (a query with a password in it).
"""

from __future__ import annotations

import contextvars
import json
import logging
import traceback
from datetime import UTC, datetime
from types import TracebackType
from typing import TextIO

from keyrelease.validation import visible

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("keyrelease_request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
WITHHELD = "(message withheld from the log)"

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

def escape(text: str) -> str:
    """``text`` on one line, every control character written as a visible escape (the one
    rule of what a control character is: :mod:`keyrelease.validation`)."""
    return visible(text)


def describe_exception(exc: BaseException) -> str:
    """A traceback of ``exc`` and its causes: types and frames, no messages (see above)."""
    lines: list[str] = []
    _describe(exc, lines, seen=set(), indent="")
    return visible("\n".join(lines), keep="\n")


def _describe(exc: BaseException, lines: list[str], seen: set[int], indent: str) -> None:
    seen.add(id(exc))
    cause, context = exc.__cause__, exc.__context__
    if cause is not None and id(cause) not in seen:
        _describe(cause, lines, seen, indent)
        lines += ["", indent + "The above exception was the direct cause of the following exception:", ""]
    elif context is not None and not exc.__suppress_context__ and id(context) not in seen:
        _describe(context, lines, seen, indent)
        lines += ["", indent + "During handling of the above exception, another exception occurred:", ""]
    if exc.__traceback__ is not None:
        lines.append(indent + "Traceback (most recent call last):")
        frames = traceback.format_list(traceback.extract_tb(exc.__traceback__))
        lines += [indent + line for frame in frames for line in frame.rstrip("\n").split("\n")]
    kind = type(exc)
    name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
    lines.append(f"{indent}{name}: {WITHHELD}")
    if isinstance(exc, BaseExceptionGroup):
        for number, inner in enumerate(exc.exceptions, 1):
            lines.append(f"{indent}+---------------- {number} ----------------")
            _describe(inner, lines, seen, indent + "| ")


def _exception_text(ei: _ExcInfo) -> str:
    return describe_exception(ei[1]) if ei[1] is not None else ""


def _access_path_only(record: logging.LogRecord) -> None:
    """uvicorn's access record names ``path?query`` as its third argument: keep the path."""
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        path = record.args[2]
        if isinstance(path, str) and "?" in path:
            record.args = (*record.args[:2], path.split("?", 1)[0], *record.args[3:])


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT` on one line, then the traceback, if any, on the lines below."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def formatException(self, ei: _ExcInfo) -> str:  # type: ignore[override]
        return _exception_text(ei)

    def format(self, record: logging.LogRecord) -> str:
        _access_path_only(record)
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        if not hasattr(record, "request_id"):
            record.request_id = request_id.get()
        text = escape(self.formatMessage(record))
        # Not record.exc_text: another handler may have cached a traceback with the message.
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + visible(self.formatStack(record.stack_info), keep="\n")
        return text


class JsonFormatter(logging.Formatter):
    """``{"time": …, "level": …, "logger": …, "message": …, "request_id": …}`` on one line,
    plus ``exception`` when there is one."""

    def formatException(self, ei: _ExcInfo) -> str:  # type: ignore[override]
        return _exception_text(ei)

    def format(self, record: logging.LogRecord) -> str:
        _access_path_only(record)
        entry = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": escape(record.getMessage()),
            "request_id": getattr(record, "request_id", request_id.get()),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = visible(self.formatStack(record.stack_info), keep="\n")
        return json.dumps(entry, ensure_ascii=False, default=str)


def formatter(log_format: str = "text") -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else TextFormatter()


def handler(log_format: str = "text", stream: TextIO | None = None) -> logging.Handler:
    """keyrelease's log handler: request ids, ``log_format``, to ``stream`` (default stderr)."""
    made: logging.Handler = logging.StreamHandler(stream)
    made.addFilter(RequestIdFilter())
    made.setFormatter(formatter(log_format))
    return made


def configure(log_format: str = "text", level: int = logging.INFO) -> logging.Handler:
    """Route every log record to stderr in ``log_format`` (``text`` or ``json``); returns the handler."""
    made = handler(log_format)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(made)
    root.setLevel(level)
    # Tortoise announces every init and close at INFO ("Tortoise-ORM shutdown" twice per
    # command, one before "started"): its warnings and errors are enough.
    logging.getLogger("tortoise").setLevel(max(level, logging.WARNING))
    return made

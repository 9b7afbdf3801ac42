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

A record is cheap (see docs/performance.md): the formatters write the timestamp from a
per-second cache and the JSON line field by field with the json module's own string encoder
(what ``json.dumps`` writes), and :func:`configure` switches off what ``logging`` would gather
that no format here writes (the caller's frame, thread, process), as the Logging HOWTO's
"Optimization" section describes. The access line, one per request, is written without a record
at all while the logging is this module's (:mod:`keyrelease.access_log`), by the formatters'
own :meth:`~JsonFormatter.line`.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime
from json.encoder import encode_basestring
from types import TracebackType
from typing import TextIO

from keyrelease.validation import visible

request_id: contextvars.ContextVar[str] = contextvars.ContextVar("keyrelease_request_id", default="-")

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"
#: uvicorn's logger of access lines, one per request (see :mod:`keyrelease.access_log`).
ACCESS_LOGGER = "uvicorn.access"
WITHHELD = "(message withheld from the log)"

_ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None] | tuple[None, None, None]

#: ``escape(text)``: ``text`` on one line, every control character written as a visible escape
#: (the one rule of what a control character is: :mod:`keyrelease.validation`).
escape = visible


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


def without_query(name: str, args: object) -> object:
    """The arguments of a record of logger ``name`` as written: uvicorn's access record names
    ``path?query`` as its third argument, of which the path is kept."""
    if name == ACCESS_LOGGER and isinstance(args, tuple) and len(args) == 5:
        path = args[2]
        if isinstance(path, str) and "?" in path:
            return (*args[:2], path.split("?", 1)[0], *args[3:])
    return args


def _access_path_only(record: logging.LogRecord) -> None:
    record.args = without_query(record.name, record.args)  # type: ignore[assignment]


class RequestIdFilter(logging.Filter):
    """Adds ``record.request_id`` (the current request's id, or ``-``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


class _SecondCache:
    """The text of a whole second, made once per second: ``render(int(created))``."""

    def __init__(self, render: Callable[[int], str]) -> None:
        self.render = render
        self.start = self.end = 0.0  # the second rendered: start <= created < end
        self.text = ""

    def at(self, created: float) -> str:
        if not self.start <= created < self.end:
            second = int(created)
            self.text, self.start, self.end = self.render(second), float(second), float(second + 1)
        return self.text


#: ``000`` to ``999``: the milliseconds of a timestamp, as ``%03d`` writes them.
_MILLISECONDS = tuple(f"{number:03d}" for number in range(1000))


def _milliseconds(millis: int) -> str:
    return _MILLISECONDS[millis] if 0 <= millis < 1000 else f"{millis:03d}"


class TextFormatter(logging.Formatter):
    """:data:`TEXT_FORMAT` on one line, then the traceback, if any, on the lines below."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)
        # logging.Formatter.formatTime's text, the seconds made once per second
        self._seconds = _SecondCache(lambda second: time.strftime(self.default_time_format, self.converter(second)))

    def formatException(self, ei: _ExcInfo) -> str:  # type: ignore[override]
        return _exception_text(ei)

    def line(self, created: float, millis: int, levelname: str, name: str, message: str, rid: object) -> str:
        """The first line of a record with these fields (``millis``: ``int(record.msecs)``):
        :data:`TEXT_FORMAT`, escaped; the whole line of a record without a traceback."""
        moment = f"{self._seconds.at(created)},{_milliseconds(millis)}"  # logging's default_msec_format
        return escape(f"{moment} {levelname} {name} [{rid!s}]: {message}")

    def format(self, record: logging.LogRecord) -> str:
        _access_path_only(record)
        rid = getattr(record, "request_id", None)
        text = self.line(record.created, int(record.msecs), record.levelname, record.name, record.getMessage(),
                         request_id.get() if rid is None else rid)
        # Not record.exc_text: another handler may have cached a traceback with the message.
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        if record.stack_info:
            text += "\n" + visible(self.formatStack(record.stack_info), keep="\n")
        return text


#: A level's or a logger's name as a JSON string, encoded once (a few dozen names).
_json_name = functools.lru_cache(maxsize=256)(encode_basestring)


class JsonFormatter(logging.Formatter):
    """``{"time": …, "level": …, "logger": …, "message": …, "request_id": …}`` on one line,
    plus ``exception`` when there is one."""

    def formatException(self, ei: _ExcInfo) -> str:  # type: ignore[override]
        return _exception_text(ei)

    def __init__(self) -> None:
        super().__init__()
        self._seconds = _SecondCache(lambda second: datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))

    def line(self, created: float, millis: int, levelname: str, name: str, message: str, rid: object) -> str:
        """The line of a record with these fields (``millis``: ``int(record.msecs)``) and no
        exception or stack: what ``json.dumps(entry, ensure_ascii=False)`` writes for the entry
        above, written field by field, every value a string, each encoded by the json module's
        own encoder."""
        return (
            f'{{"time": "{self._seconds.at(created)}.{_milliseconds(millis)}+00:00", "level": {_json_name(levelname)}, '
            f'"logger": {_json_name(name)}, "message": {encode_basestring(escape(message))}, '
            f'"request_id": {encode_basestring(str(rid))}}}'
        )

    def format(self, record: logging.LogRecord) -> str:
        _access_path_only(record)
        rid = getattr(record, "request_id", None)
        line = self.line(record.created, int(record.msecs), record.levelname, record.name, record.getMessage(),
                         request_id.get() if rid is None else rid)
        if not (record.exc_info or record.stack_info):
            return line
        line = line[:-1]  # the closing brace, after the fields below
        if record.exc_info:
            line += f', "exception": {encode_basestring(self.formatException(record.exc_info))}'
        if record.stack_info:
            stack = visible(self.formatStack(record.stack_info), keep="\n")
            line += f', "stack": {encode_basestring(stack)}'
        return line + "}"


def lean_records() -> None:
    """Records without the caller's file, line and function, thread, process or
    multiprocessing name (no format here writes them): ``logging`` then skips walking the
    stack and asking the threading and multiprocessing modules for every record."""
    logging._srcfile = None
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False


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
    lean_records()
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

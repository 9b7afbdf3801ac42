"""The access line of each request, written without a ``logging.LogRecord``.

uvicorn writes one access line per request, at the start of the response:
``access_logger.info('%s - "%s %s HTTP/%s" %d', client, method, path_with_query, version, status)``.
Through ``logging`` that is a record (its ``__init__`` alone is ~35 attribute stores), the
request-id filter, the query-dropping step and the formatter's generic path: about a quarter of
the instructions of a ``/healthz`` request (docs/performance.md).

:class:`AccessLogger` is what ``keyrelease serve`` hands uvicorn's request cycles in place of
the ``uvicorn.access`` logger (:mod:`keyrelease.http_protocols`). Its :meth:`~AccessLogger.info`
writes the line ``logging`` would have written, byte for byte: the formatter's own
:meth:`~keyrelease.logs.JsonFormatter.line` given the fields instead of a record (the time
taken as ``LogRecord`` takes it, the query string dropped, the request id from its context
variable, the escaping), to the handler's stream under the handler's lock, flushed at once, at
the same point of the request as before, so in the same order among the other lines.

It does so only while the logging is still what :func:`keyrelease.logs.configure` set up,
checked on every call (a dozen attribute reads): ``uvicorn.access`` enabled for INFO, with no
filters or handlers of its own, propagating to a root logger whose one handler is the one found
at start-up, with its own request-id filter and formatter, a level of at most INFO and a
newline as terminator, and ``logging``'s own record factory. Anything else (pytest's ``caplog``, a handler a plugin adds,
``logging.disable``, ``--log-level warning``) and the call goes to ``logging`` unchanged.
"""

from __future__ import annotations

import logging
import time
from io import FileIO, TextIOWrapper
from logging import INFO, LogRecord, getLevelName, getLogRecordFactory
from typing import TextIO

from keyrelease.logs import ACCESS_LOGGER, JsonFormatter, RequestIdFilter, TextFormatter, request_id, without_query

#: ``LogRecord`` takes its time from ``time.time_ns()`` in newer Pythons, from ``time.time()``
#: in 3.11; the milliseconds derived differ in rounding, so the same formula is used here.
_NANOSECOND_CLOCK = "time_ns" in LogRecord.__init__.__code__.co_names


def record_time() -> tuple[float, int]:
    """``created`` and ``int(msecs)`` as ``logging.LogRecord`` sets them for a record made now."""
    if _NANOSECOND_CLOCK:
        now = time.time_ns()
        return now / 1e9, (now % 1_000_000_000) // 1_000_000
    created = time.time()
    return created, int((created - int(created)) * 1000)


def _flushed_by_write(stream: object) -> bool:
    """Has writing a line to ``stream`` done what ``stream.flush()`` would? It has for
    sys.stderr: line-buffered, it flushes at the newline; with PYTHONUNBUFFERED, it writes
    through to the file descriptor at once."""
    return type(stream) is TextIOWrapper and (
        stream.line_buffering or (stream.write_through and type(stream.buffer) is FileIO)
    )


class AccessLogger:
    """The ``uvicorn.access`` logger's ``info`` for keyrelease's log handler (see above)."""

    def __init__(self, logger: logging.Logger, handler: logging.StreamHandler[TextIO]) -> None:
        formatter = handler.formatter
        assert isinstance(formatter, TextFormatter | JsonFormatter)
        self.logger = logger
        self._root = logging.getLogger()
        self._handler = handler
        self._only_handler = [handler]
        self._filters = list(handler.filters)
        self._formatter = formatter
        self._line = formatter.line

    def info(self, msg: str, *args: object) -> None:
        """What ``logger.info(msg, *args)`` would do; without a record for uvicorn's access call."""
        logger = self.logger
        if not logger.isEnabledFor(INFO):
            return
        if type(msg) is not str or len(args) != 5 or not self._as_configured():  # uvicorn's call, or logging
            logger.info(msg, *args)
            return
        created, millis = record_time()
        try:
            message = msg % without_query(ACCESS_LOGGER, args)
        except Exception:  # a malformed call: logging reports it as it reports any (handleError)
            logger.info(msg, *args)
            return
        handler = self._handler
        lock = handler.lock
        lock.acquire()  # type: ignore[union-attr]  # a StreamHandler has one
        try:  # Handler.handle from the formatting on (under the lock, as logging formats), emit, flush
            line = self._line(created, millis, getLevelName(INFO), logger.name, message, request_id.get())
            stream = handler.stream
            stream.write(line + "\n")
            if not _flushed_by_write(stream) and stream and hasattr(stream, "flush"):
                stream.flush()
        except RecursionError:
            raise
        except Exception:
            handler.handleError(logger.makeRecord(logger.name, INFO, "", 0, msg, args, None))
        finally:
            lock.release()  # type: ignore[union-attr]

    def _as_configured(self) -> bool:
        """Would ``logging`` hand this logger's INFO record to the handler found at start-up,
        and only to it, unchanged?"""
        logger = self.logger
        if logger.filters or logger.handlers or not logger.propagate:
            return False
        parent, root = logger.parent, self._root
        while parent is not root:
            if parent is None or parent.handlers or not parent.propagate:
                return False
            parent = parent.parent
        handler = self._handler
        return (
            root.handlers == self._only_handler
            and handler.filters == self._filters
            and handler.formatter is self._formatter
            and handler.level <= INFO
            and handler.terminator == "\n"
            and getLogRecordFactory() is LogRecord
        )


def access_logger() -> AccessLogger | None:
    """An :class:`AccessLogger` when the logging is keyrelease's (:func:`keyrelease.logs.configure`:
    one stream handler on the root logger, with the request-id filter and a keyrelease
    formatter); ``None`` otherwise, and uvicorn logs its access lines through ``logging``."""
    handlers = logging.getLogger().handlers
    if len(handlers) != 1:
        return None
    (handler,) = handlers
    logger = logging.getLogger(ACCESS_LOGGER)
    if (
        type(handler) is not logging.StreamHandler
        or type(handler.formatter) not in (TextFormatter, JsonFormatter)
        or [type(found) for found in handler.filters] != [RequestIdFilter]
        or type(logger) is not logging.Logger
    ):
        return None
    return AccessLogger(logger, handler)

"""The access line without a LogRecord (keyrelease.access_log): the line ``logging`` would
write, byte for byte, in both formats, from a real ``keyrelease serve`` too; and ``logging``
itself as soon as the logging is configured any other way."""

from __future__ import annotations

import io
import json
import logging
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import pytest

from keyrelease import access_log, logs
from keyrelease.testing.processes import Process, Server, free_port, run_cli
from keyrelease.testing.settings import base_env

ACCESS = '%s - "%s %s HTTP/%s" %d'  # uvicorn's access call: client, method, path?query, version, status
CALLS = {
    "plain": ("127.0.0.1:5000", "GET", "/healthz", "1.1", 200),
    "query string": ("127.0.0.1:5000", "GET", "/graphql?query=%7BrevealKey(oneTimePassword%3A%22WFW3%22)%7D", "1.1", 405),
    "control characters": ("[::1]:61000", "POST", '/a\r\nb"\x1b[2J\x7f\x9b\u2028\u202e\x00?x=\n', "1.0", 404),
    "no client": ("", "GET", "/caf\u00e9", "1.1", 500),
}
#: Clock readings whose milliseconds round differently depending on the formula.
CLOCKS = [1764536589.0, 1764536589.9995, 1764536589.0009999, 1764536589.2879999, 1764536589.999999999]


@contextmanager
def served_logging(log_format: str) -> Iterator[tuple[io.StringIO, logging.Handler, logging.Logger]]:
    """The logging ``keyrelease serve --log-level info`` runs with (logs.configure, uvicorn's
    level on ``uvicorn.access``), onto a buffer; pytest's own handlers taken off the root for
    the duration, the previous state restored after."""
    stream = io.StringIO()
    handler = logs.handler(log_format, stream)
    root, access = logging.getLogger(), logging.getLogger(logs.ACCESS_LOGGER)
    saved = root.handlers[:], root.level, access.level
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    access.setLevel(logging.INFO)
    try:
        yield stream, handler, access
    finally:
        root.handlers[:] = saved[0]
        root.setLevel(saved[1])
        access.setLevel(saved[2])


def frozen_clock(monkeypatch: pytest.MonkeyPatch, now: float) -> None:
    monkeypatch.setattr(time, "time", lambda: now)
    monkeypatch.setattr(time, "time_ns", lambda: int(now * 1e9))


@contextmanager
def no_log_records(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Fails the test if a LogRecord is made (the logging configuration itself unchanged)."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError("a LogRecord was made")

    with monkeypatch.context() as patch:
        patch.setattr(logging.LogRecord, "__init__", refuse)
        yield


@contextmanager
def calls_to_logging(access: logging.Logger) -> Iterator[list[tuple[object, ...]]]:
    """The arguments of every ``access.info`` call, which still logs."""
    calls: list[tuple[object, ...]] = []

    def info(msg: str, *args: object) -> None:
        calls.append(args)
        logging.Logger.info(access, msg, *args)

    setattr(access, "info", info)  # noqa: B010 - an instance attribute over the method
    try:
        yield calls
    finally:
        delattr(access, "info")  # noqa: B043


def written(stream: io.StringIO) -> str:
    text = stream.getvalue()
    stream.seek(0)
    stream.truncate()
    return text


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("call", CALLS.values(), ids=CALLS.keys())
@pytest.mark.parametrize("now", CLOCKS)
def test_the_access_line_is_the_line_logging_writes_without_a_log_record(monkeypatch, log_format, call, now):
    frozen_clock(monkeypatch, now)
    token = logs.request_id.set("edge-4f2a.9:77")
    try:
        with served_logging(log_format) as (stream, _, access):
            fast = access_log.access_logger()
            assert fast is not None
            with no_log_records(monkeypatch):
                fast.info(ACCESS, *call)
            line = written(stream)
            access.info(ACCESS, *call)
            assert line == written(stream)
    finally:
        logs.request_id.reset(token)
    assert line.count("\n") == 1 and "?" not in line and "\x1b" not in line


@pytest.mark.parametrize("now", [*CLOCKS, 0.0005, 1e9 + 0.1, time.time()])
def test_the_time_is_the_one_a_log_record_takes(monkeypatch, now):
    frozen_clock(monkeypatch, now)
    record = logging.LogRecord("x", logging.INFO, "", 0, "", None, None)
    assert access_log.record_time() == (record.created, int(record.msecs))


def test_the_text_line_is_logging_own_text_format():
    record = logging.LogRecord("uvicorn.access", logging.INFO, "", 0, ACCESS, CALLS["plain"], None)
    record.request_id = "edge-4f2a.9:77"
    assert logs.TextFormatter().format(record) == logging.Formatter(logs.TEXT_FORMAT).format(record)


def add_handler(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    extra = logging.StreamHandler(io.StringIO())
    access.addHandler(extra)
    return lambda: access.removeHandler(extra)


def add_root_handler(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    root, extra = logging.getLogger(), logging.StreamHandler(io.StringIO())
    root.addHandler(extra)
    return lambda: root.removeHandler(extra)


def add_filter(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    def upper(record: logging.LogRecord) -> bool:
        record.msg = record.msg.upper()
        return True

    access.addFilter(upper)
    return lambda: access.removeFilter(upper)


def add_handler_filter(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    def only_errors(record: logging.LogRecord) -> bool:
        return record.args[-1] >= 500  # type: ignore[index]

    handler.addFilter(only_errors)
    return lambda: handler.removeFilter(only_errors)


def other_formatter(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    formatter = handler.formatter
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    return lambda: handler.setFormatter(formatter)


def handler_level(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    handler.setLevel(logging.WARNING)
    return lambda: handler.setLevel(logging.NOTSET)


def no_propagation(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    access.propagate = False
    return lambda: setattr(access, "propagate", True)


def parent_handler(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    return add_handler(logging.getLogger("uvicorn"), handler)


def record_factory(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    factory = logging.getLogRecordFactory()

    def stamped(*args: object, **kwargs: object) -> logging.LogRecord:
        record = factory(*args, **kwargs)
        record.created = 0.0
        return record

    logging.setLogRecordFactory(stamped)
    return lambda: logging.setLogRecordFactory(factory)


def level_renamed(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    logging.addLevelName(logging.INFO, "NOTICE")
    return lambda: logging.addLevelName(logging.INFO, "INFO")


def access_off(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    access.setLevel(logging.WARNING)  # keyrelease serve --log-level warning
    return lambda: access.setLevel(logging.INFO)


def logging_disabled(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    logging.disable(logging.INFO)
    return lambda: logging.disable(logging.NOTSET)


def logger_disabled(access: logging.Logger, handler: logging.Handler) -> Callable[[], None]:
    access.disabled = True
    return lambda: setattr(access, "disabled", False)


RECONFIGURED = [add_handler, add_root_handler, add_filter, add_handler_filter, other_formatter, handler_level,
                no_propagation, parent_handler, record_factory, access_off, logging_disabled, logger_disabled]


@pytest.mark.parametrize("log_format", ["text", "json"])
@pytest.mark.parametrize("reconfigure", RECONFIGURED, ids=[change.__name__ for change in RECONFIGURED])
def test_logging_configured_after_start_up_writes_the_access_line_itself(monkeypatch, log_format, reconfigure):
    frozen_clock(monkeypatch, CLOCKS[1])
    with served_logging(log_format) as (stream, handler, access):
        fast = access_log.access_logger()  # at start-up: keyrelease's logging
        assert fast is not None
        undo = reconfigure(access, handler)
        try:
            for call in CALLS.values():
                access.info(ACCESS, *call)
            by_logging = written(stream)
            with calls_to_logging(access) as calls:
                for call in CALLS.values():
                    fast.info(ACCESS, *call)
            assert written(stream) == by_logging
            assert calls == ([] if not access.isEnabledFor(logging.INFO) else list(CALLS.values()))
        finally:
            undo()
        with no_log_records(monkeypatch):  # keyrelease's logging again: the fast path again
            fast.info(ACCESS, *CALLS["plain"])
        assert written(stream).count("\n") == 1


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_renamed_level_is_written_renamed_without_a_log_record(monkeypatch, log_format):
    frozen_clock(monkeypatch, CLOCKS[0])
    with served_logging(log_format) as (stream, handler, access):
        fast = access_log.access_logger()
        assert fast is not None
        undo = level_renamed(access, handler)
        try:
            access.info(ACCESS, *CALLS["plain"])
            by_logging = written(stream)
            with no_log_records(monkeypatch):
                fast.info(ACCESS, *CALLS["plain"])
        finally:
            undo()
    assert stream.getvalue() == by_logging and "NOTICE" in by_logging


def test_caplog_sees_the_access_records(caplog):
    caplog.set_level(logging.INFO, logger=logs.ACCESS_LOGGER)
    with served_logging("json") as (stream, _, _access):
        fast = access_log.access_logger()
        assert fast is not None
        logging.getLogger().addHandler(caplog.handler)  # pytest's handler beside keyrelease's
        fast.info(ACCESS, *CALLS["query string"])
    assert [(record.name, record.levelno) for record in caplog.records] == [(logs.ACCESS_LOGGER, logging.INFO)]
    assert json.loads(stream.getvalue())["message"] == '127.0.0.1:5000 - "GET /graphql HTTP/1.1" 405'


def test_without_keyrelease_logging_uvicorn_keeps_its_logger():
    root = logging.getLogger()
    saved = root.handlers[:]
    try:
        root.handlers[:] = [logging.StreamHandler(io.StringIO())]  # logging.basicConfig's kind
        assert access_log.access_logger() is None
        root.handlers[:] = [logs.handler("json", io.StringIO()), logs.handler("text", io.StringIO())]
        assert access_log.access_logger() is None
    finally:
        root.handlers[:] = saved


# --- a real keyrelease serve ---------------------------------------------------------------


def raw_request(port: int, request_id: str, target: str, method: str = "GET", body: bytes = b"") -> tuple[str, int]:
    """One request on its own connection; the client address uvicorn sees and the status."""
    with socket.create_connection(("127.0.0.1", port)) as sock:
        host, port_number = sock.getsockname()[:2]
        client = f"{host}:{port_number}"
        head = (f"{method} {target} HTTP/1.1\r\nHost: t\r\nX-Request-Id: {request_id}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n")
        sock.sendall(head.encode() + body)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
    return client, int(response.split(b" ", 2)[1])


#: (request id, method, request target, body, the path uvicorn hands its access logger)
REQUESTS = [
    ("live-healthz-query", "GET", "/healthz?token=WFW3-secret", b"", "/healthz?token=WFW3-secret"),
    ("live-control-chars", "GET", "/a%0Ab%1B%5B2J%E2%80%A8?x=%0A", b"", "/a%0Ab%1B%5B2J%E2%80%A8?x=%0A"),
    ("live-token-refused", "POST", "/ids/auth/login", b"", "/ids/auth/login"),
    ("live-graphql-error", "POST", "/graphql", b'{"query": "{"}', "/graphql"),
]


def lines_of(output: str, log_format: str, request_id: str) -> list[str]:
    if log_format == "json":
        return [line for line in output.splitlines() if line.startswith("{") and json.loads(line)["request_id"] == request_id]
    return [line for line in output.splitlines() if f" [{request_id}]: " in line]


def what_logging_writes(log_format: str, line: str, call: tuple[object, ...], request_id: str) -> str:
    """The line keyrelease's formatter makes of uvicorn's record for ``call``, stamped with the
    time written in ``line`` (the time's own text is checked against LogRecord above)."""
    if log_format == "json":
        stamp = datetime.fromisoformat(json.loads(line)["time"])
        second, millis = stamp.replace(microsecond=0).timestamp(), stamp.microsecond // 1000
    else:
        whole, millis_text = line[:23].split(",")
        second, millis = time.mktime(time.strptime(whole, "%Y-%m-%d %H:%M:%S")), int(millis_text)
    record = logging.LogRecord(logs.ACCESS_LOGGER, logging.INFO, "", 0, ACCESS, call, None)
    record.created, record.msecs, record.request_id = second, float(millis), request_id
    return logs.formatter(log_format).format(record)



@pytest.mark.live
@pytest.mark.parametrize(("log_format", "http"), [("text", "auto"), ("json", "auto"), ("json", "h11")])
def test_a_served_access_line_is_the_line_logging_writes(tmp_path, log_format, http):
    env = base_env(tmp_path, KEYRELEASE_LOG_FORMAT=log_format)
    assert run_cli(env, "migrate").returncode == 0
    server = Server(env=env, log_path=tmp_path / "server.log").start("--log-level", "info", "--http", http)
    try:
        calls = {}
        for request_id, method, target, body, path in REQUESTS:
            client, status = raw_request(server.port, request_id, target, method, body)
            calls[request_id] = (client, method, path, "1.1", status)
    finally:
        server.stop()
    output = server.output()
    for request_id, call in calls.items():
        *before, line = lines_of(output, log_format, request_id)  # the access line comes last
        assert line == what_logging_writes(log_format, line, call, request_id), request_id
        assert "?" not in line and "WFW3" not in line
    assert len(lines_of(output, log_format, "live-graphql-error")) >= 2  # the GraphQL error's own line, then the access line


#: keyrelease serve, with a handler of an operator's added to ``uvicorn.access`` after keyrelease
#: has configured its logging (as a logging config or a plugin might).
RECONFIGURED_SERVE = """
import logging, sys
from keyrelease import cli, logs

configure = logs.configure

def configure_then_add_a_handler(*args, **kwargs):
    handler = configure(*args, **kwargs)
    extra = logging.FileHandler(sys.argv.pop(1))
    extra.setFormatter(logging.Formatter("%(name)s %(message)s"))
    logging.getLogger("uvicorn.access").addHandler(extra)
    return handler

logs.configure = configure_then_add_a_handler
sys.argv[0] = "keyrelease"
sys.exit(cli.main())
"""


@pytest.mark.live
def test_access_lines_reach_a_handler_added_after_start_up(tmp_path):
    env = base_env(tmp_path, KEYRELEASE_LOG_FORMAT="json")
    assert run_cli(env, "migrate").returncode == 0
    script, extra = tmp_path / "serve.py", tmp_path / "access.log"
    script.write_text(RECONFIGURED_SERVE)
    port = free_port()
    argv = [sys.executable, str(script), str(extra), "serve", "--port", str(port), "--log-level", "info"]
    server = Process(argv, env, log_path=tmp_path / "server.log", port=port).start()
    try:
        client, status = raw_request(port, "live-reconfigured", "/healthz?token=WFW3-secret")
    finally:
        server.stop()
    # Through logging: the added handler has the record (its own format, the query string too:
    # its formatter is not keyrelease's), and keyrelease's handler the usual line.
    assert f'uvicorn.access {client} - "GET /healthz?token=WFW3-secret HTTP/1.1" {status}' in extra.read_text().splitlines()
    (line,) = lines_of(server.output(), "json", "live-reconfigured")
    assert line == what_logging_writes("json", line, (client, "GET", "/healthz?token=WFW3-secret", "1.1", status), "live-reconfigured")

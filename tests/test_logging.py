"""Structured logs: one JSON object per line, each carrying the id of its request; the id is
answered in X-Request-Id, and an incoming one is kept only when it is safe."""

from __future__ import annotations

import io
import json
import logging

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from keyrelease import logs
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.request_id import RequestId
from keyrelease.testing.settings import base_env


@pytest.fixture
def json_log():
    """Route records to a JSON handler on a buffer, as ``keyrelease serve`` with LOG_FORMAT=json."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(logs.RequestIdFilter())
    handler.setFormatter(logs.JsonFormatter())
    logger = logging.getLogger("keyrelease.test")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield stream
    logger.removeHandler(handler)


def small_app() -> RequestId:
    async def hello(request):
        logging.getLogger("keyrelease.test").info("handling %s", request.url.path)
        return PlainTextResponse("hi")

    return RequestId(Starlette(routes=[Route("/hello", hello)]))


async def get(app, headers=None) -> httpx.Response:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as http:
        return await http.get("/hello", headers=headers or {})


async def test_every_record_in_a_request_carries_its_id_and_the_response_names_it(json_log):
    response = await get(small_app())
    request_id = response.headers["x-request-id"]
    assert len(request_id) == 32
    (line,) = json_log.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "handling /hello"
    assert record["request_id"] == request_id
    assert record["level"] == "INFO" and record["logger"] == "keyrelease.test"
    assert record["time"].endswith("+00:00")


async def test_a_safe_incoming_request_id_is_kept(json_log):
    response = await get(small_app(), {"X-Request-Id": "edge-4f2a.9:77"})
    assert response.headers["x-request-id"] == "edge-4f2a.9:77"
    assert json.loads(json_log.getvalue())["request_id"] == "edge-4f2a.9:77"


@pytest.mark.parametrize("unsafe", ["short", "has space in it", 'quote"injection', "x" * 129, "ünïcode-id-here"])
async def test_an_unsafe_incoming_request_id_is_replaced(json_log, unsafe):
    response = await get(small_app(), {"X-Request-Id": unsafe.encode("utf-8")})
    assert response.headers["x-request-id"] != unsafe
    assert len(response.headers["x-request-id"]) == 32


def test_outside_a_request_the_id_is_a_dash_and_exceptions_stay_on_one_line(json_log):
    detail = "boom"
    try:
        raise ValueError(detail)
    except ValueError:
        logging.getLogger("keyrelease.test").exception("failed")
    (line,) = json_log.getvalue().splitlines()
    record = json.loads(line)
    assert record["request_id"] == "-"
    assert record["exception"].startswith("Traceback (most recent call last):")
    assert record["exception"].endswith(f"ValueError: {logs.WITHHELD}")


async def test_the_service_answers_every_request_with_an_id(client):
    for path in ("/healthz", "/metrics"):
        response = await client.get(path, headers={"X-Request-Id": "trace-000000001"})
        assert response.headers["x-request-id"] == "trace-000000001"
    login = await client.post("/ids/auth/login")
    assert len(login.headers["x-request-id"]) == 32


def test_the_log_format_is_validated(tmp_path):
    assert Settings.from_env(base_env(tmp_path, KEYRELEASE_LOG_FORMAT="json")).log_format == "json"
    with pytest.raises(ConfigError, match="KEYRELEASE_LOG_FORMAT"):
        Settings.from_env(base_env(tmp_path, KEYRELEASE_LOG_FORMAT="xml"))


def test_text_logs_name_the_request_too():
    record = logging.LogRecord("keyrelease", logging.INFO, __file__, 1, "hello", None, None)
    logs.RequestIdFilter().filter(record)
    assert logging.Formatter(logs.TEXT_FORMAT).format(record).endswith("INFO keyrelease [-]: hello")


FORGED = "x\r\n2030-01-01 00:00:00,000 CRITICAL keyrelease [-]: forged\x1b[2J\x07\x7f\x9b\u2028\u202e\x00end"


def one_record(log_format: str, emit) -> str:  # type: ignore[no-untyped-def]
    """What keyrelease's handler in ``log_format`` writes for the records ``emit`` logs."""
    stream = io.StringIO()
    handler = logs.handler(log_format, stream)
    logger = logging.getLogger("keyrelease.test.format")
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        emit(logger)
    finally:
        logger.removeHandler(handler)
    return stream.getvalue()


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_no_text_a_client_sends_can_start_a_log_line_or_reach_the_terminal(log_format):
    written = one_record(log_format, lambda log: log.warning("request to %s failed", "/graphql" + FORGED))
    assert written.count("\n") == 1 and written.endswith("\n")  # one record, one line
    line = written.rstrip("\n")
    for char in "\r\x1b\x07\x7f\x9b\u2028\u202e\x00":
        assert char not in line, repr(char)
    message = json.loads(line)["message"] if log_format == "json" else line.split("]: ", 1)[1]
    assert message == (
        "request to /graphqlx\\r\\n2030-01-01 00:00:00,000 CRITICAL keyrelease [-]: forged"
        "\\x1b[2J\\x07\\x7f\\x9b\\u2028\\u202e\\x00end failed"
    )


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_traceback_names_types_and_frames_but_withholds_every_message(log_format):
    secret = "WFW3-" + "Q" * 14 + FORGED

    def emit(log):  # type: ignore[no-untyped-def]
        try:
            try:
                raise KeyError(secret)
            except KeyError as err:
                raise RuntimeError(secret) from err
        except RuntimeError:
            log.exception("token endpoint failed")

    written = one_record(log_format, emit)
    assert secret.split("\r")[0] not in written and "WFW3" not in written
    text = json.loads(written)["exception"] if log_format == "json" else written
    assert f"KeyError: {logs.WITHHELD}" in text and f"RuntimeError: {logs.WITHHELD}" in text
    assert "The above exception was the direct cause" in text and "in emit" in text
    if log_format == "text":  # every line after the first is the traceback's, never a record of its own
        first, *rest = written.rstrip("\n").split("\n")
        assert first.endswith("ERROR keyrelease.test.format [-]: token endpoint failed")
        assert rest[0] == "Traceback (most recent call last):" and not any(line[:4].isdigit() for line in rest)


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_access_lines_name_the_path_without_its_query_string(log_format):
    stream = io.StringIO()
    access, handler = logging.getLogger("uvicorn.access"), logs.handler(log_format, stream)
    access.addHandler(handler)
    level, access.level = access.level, logging.INFO
    try:  # the record uvicorn's access logger makes for GET /graphql?query=…
        path = "/graphql?query=%7BrevealKey(oneTimePassword%3A%22WFW3%22)%7D"
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", path, "1.1", 405)
    finally:
        access.removeHandler(handler)
        access.level = level
    written = stream.getvalue()
    message = json.loads(written)["message"] if log_format == "json" else written.split("]: ", 1)[1].rstrip("\n")
    assert message == '127.0.0.1:5000 - "GET /graphql HTTP/1.1" 405'

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

from conftest import base_env
from keyrelease import logs
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.request_id import RequestId


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
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("keyrelease.test").exception("failed")
    (line,) = json_log.getvalue().splitlines()
    record = json.loads(line)
    assert record["request_id"] == "-"
    assert "ValueError: boom" in record["exception"]


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

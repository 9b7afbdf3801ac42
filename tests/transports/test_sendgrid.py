"""The sendgrid transport against a local HTTP server speaking the v3 Mail Send API."""

from __future__ import annotations

import dataclasses
import email.utils
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from starlette.responses import JSONResponse, Response

from keyrelease.exceptions import ConfigError, PermanentDeliveryError, TransientDeliveryError
from keyrelease_plugins.sendgrid import SendgridTransport, parse_retry_after


@pytest.fixture
async def transport(sendgrid_api):
    """A transport pointed at the fake API, with the key it accepts; closed after the test."""
    transport = SendgridTransport.from_env(
        {"KEYRELEASE_SENDGRID_API_KEY": sendgrid_api.api_key, "KEYRELEASE_SENDGRID_BASE_URL": sendgrid_api.url}
    )
    yield transport
    await transport.close()


# --- the request -----------------------------------------------------------------------------


async def test_posts_the_message_in_sendgrid_shape(transport, sendgrid_api, message):
    result = await transport.send(message)

    assert result.transport == "sendgrid"
    assert result.provider_message_id == sendgrid_api.message_id
    assert result.detail.startswith("202")
    [request] = sendgrid_api.requests
    assert (request.method, request.path) == ("POST", "/v3/mail/send")
    assert request.headers["authorization"] == f"Bearer {sendgrid_api.api_key}"
    assert request.headers["content-type"] == "application/json"
    assert request.json == {
        "personalizations": [
            {
                "to": [{"email": "ada@example.test", "name": "Ada Admin"}],
                "custom_args": {"keyrelease_message_id": message.message_id},
            }
        ],
        "from": {"email": "keys@example.test", "name": "Keyrelease"},
        "subject": "Your verification code",
        "content": [
            {"type": "text/plain", "value": message.text},
            {"type": "text/html", "value": message.html},
        ],
        "headers": {"X-Keyrelease-Key": "key_42", "X-Keyrelease-Message-Id": message.message_id},
        "custom_args": {"keyrelease_message_id": message.message_id},
    }


async def test_a_text_only_message_has_one_content_part_and_bare_addresses(transport, sendgrid_api, message):
    await transport.send(dataclasses.replace(message, html=None, sender="keys@example.test", to="ada@example.test"))

    body = sendgrid_api.requests[0].json
    assert body["content"] == [{"type": "text/plain", "value": message.text}]
    assert body["from"] == {"email": "keys@example.test"}
    assert body["personalizations"][0]["to"] == [{"email": "ada@example.test"}]


# --- permanent failures ----------------------------------------------------------------------


async def test_a_bad_request_is_permanent_and_carries_sendgrid_messages(transport, sendgrid_api, message):
    sendgrid_api.reply = JSONResponse(
        {
            "errors": [
                {"message": "The from email does not contain a valid address.", "field": "from.email", "help": None},
                {"message": "Invalid type. Expected: string, given: integer.", "field": "subject"},
            ]
        },
        status_code=400,
    )

    with pytest.raises(PermanentDeliveryError) as caught:
        await transport.send(message)

    said = caught.value.provider_message
    assert "400" in said
    assert "from.email: The from email does not contain a valid address." in said
    assert "subject: Invalid type. Expected: string, given: integer." in said
    assert "482913" not in said


async def test_a_rejected_api_key_is_permanent_and_logs_one_warning_without_the_key(sendgrid_api, message, caplog):
    wrong_key = "SG.revoked-key.ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    transport = SendgridTransport.from_env(
        {"KEYRELEASE_SENDGRID_API_KEY": wrong_key, "KEYRELEASE_SENDGRID_BASE_URL": sendgrid_api.url}
    )
    caplog.set_level(logging.DEBUG)

    try:
        with pytest.raises(PermanentDeliveryError) as caught:
            await transport.send(message)
    finally:
        await transport.close()

    assert "401" in str(caught.value)
    assert "authorization grant is invalid" in str(caught.value)
    assert wrong_key not in str(caught.value)
    warnings = [r for r in caplog.records if r.name == "keyrelease.mail" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    [line] = warnings[0].getMessage().splitlines()
    assert "SendGrid" in line and "API key" in line
    assert wrong_key not in caplog.text
    assert sendgrid_api.requests[0].headers["authorization"] == f"Bearer {wrong_key}"  # it was sent, though


async def test_a_key_without_permission_is_permanent_and_logs_one_warning(transport, sendgrid_api, message, caplog):
    sendgrid_api.reply = JSONResponse(
        {"errors": [{"field": None, "message": "access forbidden"}]}, status_code=403
    )

    with pytest.raises(PermanentDeliveryError, match="403.*access forbidden"):
        await transport.send(message)

    warnings = [r for r in caplog.records if r.name == "keyrelease.mail" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "API key" in warnings[0].getMessage()
    assert sendgrid_api.api_key not in caplog.text


# --- transient failures ----------------------------------------------------------------------


async def test_rate_limiting_is_transient_with_retry_after_seconds(transport, sendgrid_api, message):
    sendgrid_api.reply = JSONResponse(
        {"errors": [{"field": None, "message": "too many requests"}]}, status_code=429, headers={"Retry-After": "7"}
    )

    with pytest.raises(TransientDeliveryError) as caught:
        await transport.send(message)

    assert caught.value.retry_after == 7
    assert "429" in str(caught.value) and "too many requests" in str(caught.value)


async def test_a_server_error_is_transient_with_retry_after_as_http_date(transport, sendgrid_api, message):
    later = datetime.now(UTC) + timedelta(seconds=120)
    sendgrid_api.reply = Response(
        "<html>Service Unavailable</html>",
        status_code=503,
        headers={"Retry-After": email.utils.format_datetime(later, usegmt=True)},
    )

    with pytest.raises(TransientDeliveryError) as caught:
        await transport.send(message)

    assert 110 <= caught.value.retry_after <= 120
    assert caught.value.provider_message == "SendGrid answered 503 Service Unavailable"


async def test_a_server_error_without_retry_after_is_transient(transport, sendgrid_api, message):
    sendgrid_api.reply = Response(status_code=500)

    with pytest.raises(TransientDeliveryError) as caught:
        await transport.send(message)

    assert caught.value.retry_after is None


async def test_nothing_listening_is_transient(closed_port, message):
    transport = SendgridTransport.from_env(
        {"KEYRELEASE_SENDGRID_API_KEY": "SG.x", "KEYRELEASE_SENDGRID_BASE_URL": f"http://127.0.0.1:{closed_port}"}
    )

    try:
        with pytest.raises(TransientDeliveryError, match="ConnectError"):
            await transport.send(message)
    finally:
        await transport.close()


async def test_an_api_that_does_not_answer_times_out(sendgrid_api, message):
    sendgrid_api.hang = True
    transport = SendgridTransport.from_env(
        {
            "KEYRELEASE_SENDGRID_API_KEY": sendgrid_api.api_key,
            "KEYRELEASE_SENDGRID_BASE_URL": sendgrid_api.url,
            "KEYRELEASE_SENDGRID_TIMEOUT_SECONDS": "0.3",
        }
    )

    started = time.monotonic()
    try:
        with pytest.raises(TransientDeliveryError, match="0.3s"):
            await transport.send(message)
    finally:
        await transport.close()
    assert 0.25 < time.monotonic() - started < 1.0


# --- settings and helpers --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "KEYRELEASE_SENDGRID_API_KEY"),
        ({"KEYRELEASE_SENDGRID_API_KEY": "  "}, "KEYRELEASE_SENDGRID_API_KEY"),
        ({"KEYRELEASE_SENDGRID_API_KEY": "SG.a b"}, "KEYRELEASE_SENDGRID_API_KEY"),
        ({"KEYRELEASE_SENDGRID_API_KEY": "SG.x", "KEYRELEASE_SENDGRID_BASE_URL": "api.sendgrid.com"}, "KEYRELEASE_SENDGRID_BASE_URL"),
        ({"KEYRELEASE_SENDGRID_API_KEY": "SG.x", "KEYRELEASE_SENDGRID_BASE_URL": "ftp://x"}, "KEYRELEASE_SENDGRID_BASE_URL"),
        ({"KEYRELEASE_SENDGRID_API_KEY": "SG.x", "KEYRELEASE_SENDGRID_TIMEOUT_SECONDS": "-1"}, "KEYRELEASE_SENDGRID_TIMEOUT_SECONDS"),
        ({"KEYRELEASE_SENDGRID_API_KEY": "SG.x", "KEYRELEASE_SENDGRID_TIMEOUT_SECONDS": "ten"}, "KEYRELEASE_SENDGRID_TIMEOUT_SECONDS"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_the_variable(env, variable):
    with pytest.raises(ConfigError) as caught:
        SendgridTransport.from_env(env)

    assert str(caught.value).startswith(f"{variable}: ")
    assert "SG.a b" not in str(caught.value)


async def test_defaults_point_at_sendgrid():
    transport = SendgridTransport.from_env({"KEYRELEASE_SENDGRID_API_KEY": "SG.x"})
    try:
        assert transport.base_url == "https://api.sendgrid.com"
        assert transport.timeout == 10
    finally:
        await transport.close()


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0.0),
        ("120", 120.0),
        ("Wed, 21 Oct 2015 07:28:30 GMT", 30.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),  # already past
        ("soon", None),
        ("-5", None),
    ],
)
def test_retry_after_accepts_seconds_and_http_dates(header, seconds):
    now = datetime(2015, 10, 21, 7, 28, 0, tzinfo=UTC)

    assert parse_retry_after(header, now=now) == seconds


@pytest.mark.parametrize("character", ["\x00", "\r", "\n"], ids=["NUL", "CR", "LF"])
@pytest.mark.parametrize(
    ("field", "value", "header"),
    [
        ("to", "a{}b@example.test", "To"),
        ("sender", "Keyrelease{} <keys@example.test>", "From"),
        ("subject", "Your code{}Bcc: eve@example.test", "Subject"),
    ],
)
async def test_a_cr_lf_or_nul_in_any_header_is_permanent_and_never_posted(transport, sendgrid_api, message, field, value, header, character):
    with pytest.raises(PermanentDeliveryError, match=f"^header '{header}' contains a line break or NUL; not sent$"):
        await transport.send(dataclasses.replace(message, **{field: value.format(character)}))

    assert sendgrid_api.requests == []

"""The smtp transport against a real aiosmtpd server on 127.0.0.1."""

from __future__ import annotations

import asyncio
import dataclasses
import email
import email.policy
import email.utils
import time
from datetime import UTC, datetime, timedelta

import pytest

from keyrelease.exceptions import ConfigError, PermanentDeliveryError, TransientDeliveryError
from keyrelease_plugins.smtp import SmtpTransport


def smtp_env(port: int, **settings: str) -> dict[str, str]:
    """Settings for a local server; plain SMTP unless ``KEYRELEASE_SMTP_TLS`` says otherwise."""
    return {
        "KEYRELEASE_SMTP_HOST": "127.0.0.1",
        "KEYRELEASE_SMTP_PORT": str(port),
        "KEYRELEASE_SMTP_TLS": "none",
        "KEYRELEASE_SMTP_TIMEOUT_SECONDS": "2",
        **settings,
    }


def tls_env(server, certificates, mode: str, **settings: str) -> dict[str, str]:
    """Settings for a TLS server signed by the test CA, with the server's credentials."""
    return smtp_env(
        server.port,
        **{
            "KEYRELEASE_SMTP_TLS": mode,
            "KEYRELEASE_SMTP_CA_FILE": str(certificates.ca_file),
            "KEYRELEASE_SMTP_USERNAME": server.username,
            "KEYRELEASE_SMTP_PASSWORD": server.password,
            **settings,
        },
    )


def parse(content: bytes) -> email.message.EmailMessage:
    """The message as received, with the wire's CRLF line ends made local."""
    return email.message_from_bytes(content.replace(b"\r\n", b"\n"), policy=email.policy.default)  # type: ignore[return-value]


# --- delivery --------------------------------------------------------------------------------


async def test_delivers_a_mime_message_with_text_and_html_alternatives(start_smtp, message):
    server = start_smtp()
    transport = SmtpTransport.from_env(smtp_env(server.port))

    result = await transport.send(message)

    assert result.transport == "smtp"
    assert result.provider_message_id == message.message_id
    assert "queued as KR123" in result.detail
    [delivery] = server.handler.deliveries
    assert delivery.mail_from == "keys@example.test"
    assert delivery.rcpt_tos == ["ada@example.test"]
    mime = parse(delivery.content)
    assert mime["From"] == "Keyrelease <keys@example.test>"
    assert mime["To"] == "Ada Admin <ada@example.test>"
    assert mime["Subject"] == "Your verification code"
    assert mime["Message-ID"] == f"<{message.message_id}>"
    assert mime["X-Keyrelease-Key"] == "key_42"
    sent_at = email.utils.parsedate_to_datetime(mime["Date"])
    assert abs(datetime.now(UTC) - sent_at) < timedelta(minutes=1)
    assert mime.get_content_type() == "multipart/alternative"
    plain, html = mime.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content() == message.text
    assert html.get_content_type() == "text/html"
    assert html.get_content() == message.html


async def test_a_message_without_html_is_a_single_text_part(start_smtp, message):
    server = start_smtp()
    transport = SmtpTransport.from_env(smtp_env(server.port))

    await transport.send(dataclasses.replace(message, html=None))

    mime = parse(server.handler.deliveries[0].content)
    assert mime.get_content_type() == "text/plain"
    assert mime.get_content() == message.text


async def test_authenticates_after_required_starttls(start_smtp, certificates, message):
    server = start_smtp(
        tls_context=certificates.server_context(), require_starttls=True, auth_require_tls=True
    )
    transport = SmtpTransport.from_env(tls_env(server, certificates, "starttls"))

    result = await transport.send(message)

    assert result.provider_message_id == message.message_id
    [delivery] = server.handler.deliveries
    assert delivery.encrypted
    assert delivery.authenticated_as == server.username.encode()


async def test_authenticates_over_implicit_tls(start_smtp, certificates, message):
    # aiosmtpd does not know an implicit-TLS connection is encrypted, hence auth_require_tls=False.
    server = start_smtp(ssl_context=certificates.server_context(), auth_require_tls=False)
    transport = SmtpTransport.from_env(tls_env(server, certificates, "ssl"))

    await transport.send(message)

    [delivery] = server.handler.deliveries
    assert delivery.encrypted
    assert delivery.authenticated_as == server.username.encode()


# --- permanent failures ----------------------------------------------------------------------


async def test_a_wrong_password_is_permanent_and_not_repeated_in_the_error(start_smtp, certificates, message):
    server = start_smtp(tls_context=certificates.server_context(), require_starttls=True)
    wrong_password = "wr0ng-pa55word-xyz"
    transport = SmtpTransport.from_env(
        tls_env(server, certificates, "starttls", KEYRELEASE_SMTP_PASSWORD=wrong_password)
    )

    with pytest.raises(PermanentDeliveryError) as caught:
        await transport.send(message)

    assert "535" in str(caught.value)
    assert wrong_password not in str(caught.value)
    assert wrong_password not in repr(caught.value.__cause__)
    assert server.handler.auth_attempts  # the server did check (aiosmtplib tries each mechanism)
    assert server.handler.deliveries == []


async def test_a_rejected_recipient_is_permanent(start_smtp, message):
    server = start_smtp()
    server.handler.rcpt_reply = "550 5.1.1 <ada@example.test>: Recipient address rejected"
    transport = SmtpTransport.from_env(smtp_env(server.port))

    with pytest.raises(PermanentDeliveryError) as caught:
        await transport.send(message)

    assert "550 5.1.1" in str(caught.value)
    assert caught.value.transient is False


async def test_rejected_content_is_permanent_and_the_error_does_not_carry_the_body(start_smtp, message):
    server = start_smtp()
    server.handler.data_reply = "554 5.7.1 Message rejected"
    transport = SmtpTransport.from_env(smtp_env(server.port))

    with pytest.raises(PermanentDeliveryError) as caught:
        await transport.send(message)

    assert "554 5.7.1" in str(caught.value)
    assert "482913" not in str(caught.value)


async def test_required_starttls_not_offered_is_permanent_and_sends_no_credentials(start_smtp, certificates, message):
    server = start_smtp(auth_require_tls=False)  # plain server, would even accept AUTH in clear
    transport = SmtpTransport.from_env(tls_env(server, certificates, "starttls"))

    with pytest.raises(PermanentDeliveryError, match="STARTTLS"):
        await transport.send(message)

    assert server.handler.auth_attempts == []
    assert server.handler.deliveries == []


@pytest.mark.parametrize("mode", ["starttls", "ssl"])
async def test_an_untrusted_server_certificate_is_permanent(start_smtp, certificates, message, mode):
    if mode == "ssl":
        server = start_smtp(ssl_context=certificates.server_context(), auth_require_tls=False)
    else:
        server = start_smtp(tls_context=certificates.server_context(), require_starttls=True)
    env = tls_env(server, certificates, mode)
    del env["KEYRELEASE_SMTP_CA_FILE"]  # the system store does not know the test CA
    transport = SmtpTransport.from_env(env)

    with pytest.raises(PermanentDeliveryError, match="certificate"):
        await transport.send(message)

    assert server.handler.auth_attempts == []


@pytest.mark.parametrize(
    "headers",
    [{"Message-ID": "<forged@example.test>"}, {"subject": "Another subject"}, {"X-Note": "one\r\nBcc: eve@example.test"}],
)
async def test_a_header_that_cannot_be_sent_is_permanent_before_connecting(closed_port, message, headers):
    transport = SmtpTransport.from_env(smtp_env(closed_port))  # connecting would be a transient error

    with pytest.raises(PermanentDeliveryError, match="header"):
        await transport.send(dataclasses.replace(message, headers=headers))


# --- transient failures ----------------------------------------------------------------------


async def test_a_temporary_recipient_refusal_is_transient(start_smtp, message):
    server = start_smtp()
    server.handler.rcpt_reply = "451 4.7.1 Greylisted, try again later"
    transport = SmtpTransport.from_env(smtp_env(server.port))

    with pytest.raises(TransientDeliveryError, match="451 4.7.1"):
        await transport.send(message)


async def test_a_server_that_is_down_is_transient(closed_port, message):
    transport = SmtpTransport.from_env(smtp_env(closed_port))

    with pytest.raises(TransientDeliveryError) as caught:
        await transport.send(message)

    assert caught.value.transient is True


async def test_a_server_that_never_answers_times_out_at_the_deadline(start_tcp_server, message):
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # accept, read, never write
        writer.close()

    port = await start_tcp_server(silent)
    transport = SmtpTransport.from_env(smtp_env(port, KEYRELEASE_SMTP_TIMEOUT_SECONDS="0.5"))

    started = time.monotonic()
    with pytest.raises(TransientDeliveryError, match="0.5s"):
        await transport.send(message)
    assert 0.45 < time.monotonic() - started < 1.0


async def test_the_timeout_bounds_the_whole_send_not_each_reply(start_tcp_server, message):
    """Every reply comes within the timeout, but the conversation as a whole does not."""

    async def slow_smtp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async def reply(line: str) -> None:
            await asyncio.sleep(0.2)
            writer.write(line.encode() + b"\r\n")
            await writer.drain()

        await reply("220 slow.example.test ESMTP")
        in_data = False
        while line := await reader.readline():
            if in_data:
                if line == b".\r\n":
                    in_data = False
                    await reply("250 2.0.0 Ok: queued")
                continue
            command = line[:4].upper()
            if command == b"DATA":
                in_data = True
                await reply("354 End data with <CR><LF>.<CR><LF>")
            elif command == b"QUIT":
                await reply("221 Bye")
                break
            else:
                await reply("250 slow.example.test")
        writer.close()

    port = await start_tcp_server(slow_smtp)
    # Greeting, EHLO, MAIL, RCPT, DATA, end of data: six replies, 1.2 s in all, 0.2 s each.
    transport = SmtpTransport.from_env(smtp_env(port, KEYRELEASE_SMTP_TIMEOUT_SECONDS="0.5"))

    started = time.monotonic()
    with pytest.raises(TransientDeliveryError):
        await transport.send(message)
    assert time.monotonic() - started < 0.9


# --- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "KEYRELEASE_SMTP_HOST"),
        ({"KEYRELEASE_SMTP_HOST": ""}, "KEYRELEASE_SMTP_HOST"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_PORT": "smtp"}, "KEYRELEASE_SMTP_PORT"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_PORT": "0"}, "KEYRELEASE_SMTP_PORT"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_PORT": "65536"}, "KEYRELEASE_SMTP_PORT"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_TLS": "tls"}, "KEYRELEASE_SMTP_TLS"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_USERNAME": "u"}, "KEYRELEASE_SMTP_PASSWORD"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_PASSWORD": "p"}, "KEYRELEASE_SMTP_USERNAME"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_TIMEOUT_SECONDS": "soon"}, "KEYRELEASE_SMTP_TIMEOUT_SECONDS"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_TIMEOUT_SECONDS": "0"}, "KEYRELEASE_SMTP_TIMEOUT_SECONDS"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_TIMEOUT_SECONDS": "nan"}, "KEYRELEASE_SMTP_TIMEOUT_SECONDS"),
        ({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_CA_FILE": "/nonexistent/ca.pem"}, "KEYRELEASE_SMTP_CA_FILE"),
    ],
)
def test_a_bad_setting_is_a_config_error_naming_the_variable(env, variable):
    with pytest.raises(ConfigError) as caught:
        SmtpTransport.from_env(env)

    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")


def test_a_password_without_username_is_reported_without_the_password():
    with pytest.raises(ConfigError) as caught:
        SmtpTransport.from_env({"KEYRELEASE_SMTP_HOST": "mx", "KEYRELEASE_SMTP_PASSWORD": "hunter2-secret"})

    assert "hunter2-secret" not in str(caught.value)


@pytest.mark.parametrize(("tls", "port"), [("starttls", 587), ("ssl", 465), ("none", 25), (None, 587)])
def test_the_default_port_follows_the_tls_mode(tls, port):
    env = {"KEYRELEASE_SMTP_HOST": "mx.example.test"}
    if tls is not None:
        env["KEYRELEASE_SMTP_TLS"] = tls

    transport = SmtpTransport.from_env(env)

    assert transport.port == port
    assert transport.tls == (tls or "starttls")
    assert transport.timeout == 10



# --- unsafe headers --------------------------------------------------------------------------


async def test_a_nul_in_the_recipient_is_refused_by_the_message_builder_and_nothing_is_sent(start_smtp, message):
    server = start_smtp()
    transport = SmtpTransport.from_env(smtp_env(server.port))

    with pytest.raises(PermanentDeliveryError, match="^header 'To' contains a line break or NUL; not sent$"):
        await transport.send(dataclasses.replace(message, to="a\x00b@example.test"))

    assert server.handler.deliveries == []


@pytest.mark.parametrize("character", ["\x00", "\r", "\n"], ids=["NUL", "CR", "LF"])
@pytest.mark.parametrize(
    ("changes", "header"),
    [
        ({"to": "Ada {}<ada@example.test>"}, "To"),
        ({"sender": "Keyrelease{} <keys@example.test>"}, "From"),
        ({"subject": "Your code for “Export{}”"}, "Subject"),
        ({"headers": {"X-Keyrelease-Key": "key{}42"}}, "X-Keyrelease-Key"),
    ],
)
async def test_a_cr_lf_or_nul_in_any_header_is_permanent_and_reaches_no_server(start_smtp, message, changes, header, character):
    server = start_smtp()
    transport = SmtpTransport.from_env(smtp_env(server.port))
    field, template = next(iter(changes.items()))
    value = {k: v.format(character) for k, v in template.items()} if isinstance(template, dict) else template.format(character)

    with pytest.raises(PermanentDeliveryError, match=f"^header '{header}' contains a line break or NUL"):
        await transport.send(dataclasses.replace(message, **{field: value}))

    assert server.handler.deliveries == []

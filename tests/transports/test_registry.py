"""The smtp and sendgrid transports load through the ``keyrelease.transports`` entry points."""

from __future__ import annotations

import pytest

from keyrelease.exceptions import ConfigError
from keyrelease.mail.plugins import TransportRegistry
from keyrelease_plugins.sendgrid import SendgridTransport
from keyrelease_plugins.smtp import SmtpTransport


def test_the_registry_lists_smtp_and_sendgrid_from_entry_points():
    registry = TransportRegistry()

    assert registry.transports["smtp"] is SmtpTransport
    assert registry.transports["sendgrid"] is SendgridTransport
    by_plugin = {info.name: info for info in registry.plugins()}
    assert by_plugin["smtp"].package == "keyrelease"
    assert by_plugin["smtp"].transports == ("smtp",)
    assert by_plugin["sendgrid"].transports == ("sendgrid",)


def test_an_allowlist_can_load_smtp_alone():
    registry = TransportRegistry(allowlist=["smtp"])

    assert set(registry.transports) == {"smtp"}


def test_creating_smtp_without_a_host_names_the_variable():
    with pytest.raises(ConfigError) as caught:
        TransportRegistry().create("smtp", {})

    assert str(caught.value).startswith("KEYRELEASE_SMTP_HOST")


def test_creating_sendgrid_without_a_key_names_the_variable():
    with pytest.raises(ConfigError) as caught:
        TransportRegistry().create("sendgrid", {})

    assert str(caught.value).startswith("KEYRELEASE_SENDGRID_API_KEY")


def test_creating_smtp_from_settings_gives_a_configured_transport():
    transport = TransportRegistry().create("smtp", {"KEYRELEASE_SMTP_HOST": "mx.example.test", "KEYRELEASE_SMTP_TLS": "ssl"})

    assert isinstance(transport, SmtpTransport)
    assert (transport.host, transport.port) == ("mx.example.test", 465)

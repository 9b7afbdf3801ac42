"""docs/plugins.md is complete and true: every hook in hookspecs.py is documented there, its
listings are the example package's files, and that package (installed separately, by
``make install``) loads through its entry point and delivers mail end to end. Also
``keyrelease plugins`` and the ``KEYRELEASE_PLUGINS`` allowlist, as a user runs them."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest
from mailservers import http_server, reserve_port
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from keyrelease.exceptions import ConfigError, PermanentDeliveryError, TransientDeliveryError
from keyrelease.mail import hookspecs
from keyrelease.mail.plugins import TransportRegistry
from keyrelease.mail.transport import EmailMessage
from keyrelease.testing.processes import run_cli

ROOT = Path(__file__).resolve().parent.parent
GUIDE = ROOT / "docs" / "plugins.md"
EXAMPLE = ROOT / "examples" / "keyrelease-webhook"
CODE_LINE = re.compile(r"^Verification code: (\d{6})$", re.MULTILINE)
TOKEN = "whk-test-token-0123456789"

try:
    import keyrelease_webhook
except ImportError:  # pragma: no cover - the message says what to do
    pytest.fail("the example plugin is not installed: run `make install` "
                "(or .venv/bin/pip install -e examples/keyrelease-webhook)", pytrace=False)


# --- the guide -------------------------------------------------------------------------------


def hookspecs_in(module: Any) -> dict[str, Any]:
    """The hook specifications a module declares, by name (what pluggy would register)."""
    marker = f"{hookspecs.PROJECT}_spec"
    return {name: fn for name, fn in inspect.getmembers(module, inspect.isfunction) if hasattr(fn, marker)}


def undocumented(guide: str, hooks: dict[str, Any]) -> list[str]:
    """What the guide lacks: a ``### `hook(params)``` heading per hook, each parameter in
    bold in that section, and the word firstresult for a firstresult hook."""
    problems = []
    for name, fn in hooks.items():
        params = list(inspect.signature(fn).parameters)
        heading = f"### `{name}({', '.join(params)})`"
        if heading not in guide:
            problems.append(f"no section {heading}")
            continue
        section = re.split(r"\n#{2,3} ", guide.split(heading, 1)[1], maxsplit=1)[0]
        problems += [f"{name}: parameter {p} not described" for p in params if f"**`{p}`**" not in section]
        if getattr(fn, f"{hookspecs.PROJECT}_spec")["firstresult"] and "firstresult" not in section:
            problems.append(f"{name}: does not say it is firstresult")
    return problems


def test_every_hook_in_hookspecs_is_documented_in_the_guide():
    hooks = hookspecs_in(hookspecs)

    assert hooks, "no hookspecs found: the test is looking in the wrong place"
    assert undocumented(GUIDE.read_text(), hooks) == []


def test_a_hook_missing_from_the_guide_fails_the_check():
    guide = GUIDE.read_text()
    without = guide.replace("### `register_transports(register)`", "### Registering")

    assert undocumented(without, hookspecs_in(hookspecs)) == ["no section ### `register_transports(register)`"]

    class Later:  # a hook added to hookspecs.py tomorrow, not yet in the guide
        @staticmethod
        @hookspecs.hookspec(firstresult=True)
        def render_templates(kind, values):
            """Return templates for ``kind``."""

    assert undocumented(guide, {"render_templates": Later.render_templates}) == [
        "no section ### `render_templates(kind, values)`"
    ]


def listing_after(guide: str, caption: str) -> str:
    """The fenced code block that follows ``caption`` in the guide."""
    match = re.search(re.escape(caption) + r"\s*\n\s*```[a-z]*\n(.*?)```", guide, re.DOTALL)
    assert match, f"no listing after {caption}"
    return match.group(1)


@pytest.mark.parametrize("name", ["pyproject.toml", "keyrelease_webhook.py"])
def test_the_guide_shows_the_example_package_as_it_is(name):
    listing = listing_after(GUIDE.read_text(), f"`examples/keyrelease-webhook/{name}`:")

    assert listing == (EXAMPLE / name).read_text()


# --- the example plugin ----------------------------------------------------------------------


def test_the_example_plugin_loads_through_its_entry_point():
    [entry_point] = [ep for ep in metadata.entry_points(group="keyrelease.transports") if ep.name == "webhook"]
    registry = TransportRegistry()

    assert entry_point.dist is not None and entry_point.dist.name == "keyrelease-webhook"
    assert registry.transports["webhook"] is keyrelease_webhook.WebhookTransport
    [info] = [p for p in registry.plugins() if p.name == "webhook"]
    assert (info.package, info.version, info.transports) == ("keyrelease-webhook", "0.1.0", ("webhook",))


@dataclass
class Receiver:
    """A local HTTP endpoint for the webhook: records each request, answers as scripted."""

    url: str = ""
    requests: list[tuple[dict[str, str], Any]] = field(default_factory=list)
    script: list[Response] = field(default_factory=list)

    async def receive(self, request: Request) -> Response:
        self.requests.append((dict(request.headers), await request.json()))
        if self.script:
            return self.script.pop(0)
        return JSONResponse({"id": f"hook-{len(self.requests)}"}, status_code=202)

    def env(self) -> dict[str, str]:
        return {
            "KEYRELEASE_MAIL_TRANSPORT": "webhook",
            "KEYRELEASE_WEBHOOK_URL": self.url,
            "KEYRELEASE_WEBHOOK_TOKEN": TOKEN,
        }


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    hook = Receiver()
    async with http_server(Starlette(routes=[Route("/hooks/mail", hook.receive, methods=["POST"])])) as url:
        hook.url = url + "/hooks/mail"
        yield hook


MESSAGE = EmailMessage(
    message_id="0b7f0c8e-3f5d-4a52-9d0e-2f4f1f6f9a10@example.org",
    sender="keyrelease <keys@example.org>",
    to="ada@uni.example",
    subject="Your keyrelease verification code",
    text="Verification code: 123456\n",
    html="<p>Verification code: <strong>123456</strong></p>",
    headers={"X-Keyrelease-Message-Id": "0b7f0c8e-3f5d-4a52-9d0e-2f4f1f6f9a10@example.org"},
)


async def test_the_example_transport_posts_the_message_to_a_real_http_server(receiver):
    transport = TransportRegistry().create("webhook", receiver.env())
    try:
        result = await transport.send(MESSAGE)
    finally:
        await transport.close()

    assert (result.transport, result.provider_message_id, result.detail) == ("webhook", "hook-1", "202 Accepted")
    [(headers, body)] = receiver.requests
    assert headers["authorization"] == f"Bearer {TOKEN}"
    assert headers["idempotency-key"] == MESSAGE.message_id
    assert body == {
        "message_id": MESSAGE.message_id,
        "from": MESSAGE.sender,
        "to": MESSAGE.to,
        "subject": MESSAGE.subject,
        "text": MESSAGE.text,
        "html": MESSAGE.html,
        "headers": dict(MESSAGE.headers),
    }


@pytest.mark.parametrize(
    ("reply", "error", "retry_after"),
    [
        (Response(status_code=503, headers={"Retry-After": "7"}), TransientDeliveryError, 7.0),
        (Response(status_code=429), TransientDeliveryError, None),
        (JSONResponse({"error": "echo: Verification code: 123456"}, status_code=400), PermanentDeliveryError, None),
        (Response(status_code=401), PermanentDeliveryError, None),
    ],
)
async def test_the_example_transport_maps_answers_to_transient_or_permanent(receiver, reply, error, retry_after):
    receiver.script.append(reply)
    transport = TransportRegistry().create("webhook", receiver.env())
    try:
        with pytest.raises(error) as caught:
            await transport.send(MESSAGE)
    finally:
        await transport.close()

    assert caught.value.retry_after == retry_after
    assert str(caught.value).startswith(f"webhook answered {reply.status_code}")
    assert "123456" not in str(caught.value) and TOKEN not in str(caught.value)


async def test_the_example_transport_treats_a_server_that_is_down_as_transient():
    with reserve_port() as closed:
        transport = keyrelease_webhook.WebhookTransport.from_env(
            {"KEYRELEASE_WEBHOOK_URL": f"http://127.0.0.1:{closed.getsockname()[1]}/"}
        )
        try:
            with pytest.raises(TransientDeliveryError, match="webhook request failed: ConnectError"):
                await transport.send(MESSAGE)
        finally:
            await transport.close()


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({}, "KEYRELEASE_WEBHOOK_URL"),
        ({"KEYRELEASE_WEBHOOK_URL": "ftp://example.org/"}, "KEYRELEASE_WEBHOOK_URL"),
        ({"KEYRELEASE_WEBHOOK_URL": "http://x.example/", "KEYRELEASE_WEBHOOK_TOKEN": "a b"}, "KEYRELEASE_WEBHOOK_TOKEN"),
        ({"KEYRELEASE_WEBHOOK_URL": "http://x.example/", "KEYRELEASE_WEBHOOK_TIMEOUT_SECONDS": "-1"}, "KEYRELEASE_WEBHOOK_TIMEOUT_SECONDS"),
    ],
)
def test_the_example_transport_validates_its_settings_at_start_up(env, variable):
    with pytest.raises(ConfigError) as caught:
        TransportRegistry().create("webhook", env)

    assert caught.value.variable == variable
    assert "a b" not in str(caught.value)


class TestTheServiceWithTheExamplePlugin:
    @pytest.fixture
    def env_overrides(self, receiver: Receiver) -> dict[str, str]:
        return receiver.env()

    async def test_create_key_sends_the_code_through_the_webhook_and_it_verifies(self, api, receiver):
        from mailservers import wait_until

        ada = await api.admin()
        key = await api.create_key(ada, name="Through the webhook")

        await wait_until(lambda: len(receiver.requests) == 1)
        [(headers, body)] = receiver.requests
        assert body["to"] == ada.email
        assert headers["idempotency-key"] == body["message_id"]
        assert "“Through the webhook”" in body["subject"]
        code = CODE_LINE.search(body["text"]).group(1)
        assert "Verification code: <strong" in body["html"]
        verified = await api.verify(ada, key["id"], code)
        assert verified["status"] == "ACTIVE"


# --- `keyrelease plugins` and the allowlist ----------------------------------------------------


def cli_env(tmp_path: Path, **settings: str) -> dict[str, str]:
    return {
        "KEYRELEASE_VAR_DIR": str(tmp_path / "var"),
        "KEYRELEASE_SECRET_KEY": "test-server-secret-0123456789abcdef-0123456789",
        "KEYRELEASE_PLUGINS": "",
        **settings,
    }


def listed(stdout: str) -> dict[str, tuple[str, str, str]]:
    """``keyrelease plugins`` output: plugin -> (package, version, transports)."""
    plugins = {}
    for line in stdout.strip().splitlines():
        name, package_version, transports = line.split("\t")
        package, version = package_version.split(" ")
        plugins[name] = (package, version, transports.removeprefix("transports: "))
    return plugins


def test_keyrelease_plugins_lists_every_plugin_with_its_package_and_version(tmp_path):
    done = run_cli(cli_env(tmp_path), "plugins")

    assert done.returncode == 0, done.stderr
    ours = metadata.version("keyrelease")
    assert listed(done.stdout) == {
        "console": ("keyrelease", ours, "console"),
        "memory": ("keyrelease-memory", "0.1.0", "memory"),
        "sendgrid": ("keyrelease", ours, "sendgrid"),
        "smtp": ("keyrelease", ours, "smtp"),
        "webhook": ("keyrelease-webhook", "0.1.0", "webhook"),
    }


def test_the_allowlist_loads_only_the_plugins_it_names(tmp_path):
    done = run_cli(cli_env(tmp_path, KEYRELEASE_PLUGINS="console,memory"), "plugins")

    assert done.returncode == 0, done.stderr
    assert set(listed(done.stdout)) == {"console", "memory"}


def test_plugins_left_out_of_the_allowlist_are_not_even_imported():
    probe = (
        "import sys; from keyrelease.mail.plugins import TransportRegistry; "
        "TransportRegistry(['console', 'memory']); "
        "print(sorted(m for m in sys.modules if m.startswith(('keyrelease_plugins.', 'keyrelease_webhook', 'keyrelease_memory'))))"
    )
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=30, check=True)

    assert done.stdout.strip() == "['keyrelease_memory', 'keyrelease_plugins.console']"


def test_an_unknown_name_in_the_allowlist_is_one_error_line(tmp_path):
    done = run_cli(cli_env(tmp_path, KEYRELEASE_PLUGINS="console,nope"), "plugins")

    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == ["configuration error: KEYRELEASE_PLUGINS: no installed plugin named nope"]

"""Shared fixtures: a migrated SQLite database per test, the real app with its lifespan,
an HTTP client going through the ASGI stack, a frozen clock, and the memory mail transport
(``tests/keyrelease-memory``, installed by ``make install`` and loaded through its entry point
like any third-party transport)."""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import re
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from dbutil import TABLES, asyncpg_url
from sqlcount import StatementCounter, counting_pool
from tortoise.backends.base.executor import EXECUTOR_CACHE

from keyrelease import db, logs
from keyrelease.app import create_app
from keyrelease.clock import FrozenClock
from keyrelease.config import Settings
from keyrelease.service.admins import create_admin
from keyrelease.testing import postgres

try:  # the memory mail transport every test reads its mail from: a package of its own
    import keyrelease_memory  # noqa: F401
except ImportError:  # pragma: no cover - the message says what to do
    pytest.exit("the memory mail transport is not installed: run `make install` "
                "(or .venv/bin/pip install -e tests/keyrelease-memory)", returncode=4)

SECRET_KEY = "test-server-secret-0123456789abcdef-0123456789"
CODE_LINE = re.compile(r"^Verification code: (\d{6})$", re.MULTILINE)
OTP_LINE = re.compile(r"^One-time password: ([A-Z2-7-]+)$", re.MULTILINE)


#: A skip whose reason starts with this names a part of the test environment that is absent
#: (PostgreSQL, Chromium, Node, wrk). Such skips are always listed with their reason (``-rs``);
#: under ``CI=true`` they fail the run instead (:func:`pytest_runtest_makereport`), so a CI
#: machine that lost a service cannot pass by skipping what needs it.
MISSING = "missing from this environment: "
IN_CI = os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(what: str) -> str:
    """The reason for skipping a test that needs ``what``, which this machine does not have."""
    return MISSING + what


#: Every test that touches the database runs on SQLite and on PostgreSQL. The PostgreSQL
#: variants are always collected; without KEYRELEASE_TEST_POSTGRES_URL they are skipped, saying why.
POSTGRES_SERVER = os.environ.get("KEYRELEASE_TEST_POSTGRES_URL", "").strip()
BACKENDS = ["sqlite", "postgres"]
NO_POSTGRES = missing(
    "PostgreSQL (set KEYRELEASE_TEST_POSTGRES_URL, e.g. postgres://postgres@127.0.0.1:5432/postgres)"
)
#: For tests that need PostgreSQL whatever the backend parameter.
needs_postgres = pytest.mark.skipif(not POSTGRES_SERVER, reason=NO_POSTGRES)


def needs_executable(path: str, install: str) -> pytest.MarkDecorator:
    """Skip (fail under CI) unless ``path`` is an executable: an absolute path, exactly as the
    test runs it, or a name looked up on PATH (e.g. ``node``). ``install`` says how to get it."""
    found = os.access(path, os.X_OK) if os.path.isabs(path) else shutil.which(path) is not None
    return pytest.mark.skipif(not found, reason=missing(f"{path} ({install})"))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    _missing_environment(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector: pytest.Collector) -> Any:
    report = yield
    _missing_environment(report)  # a module skipped as a whole
    return report


def _missing_environment(report: pytest.TestReport | pytest.CollectReport) -> None:
    """A skip for want of the environment: a failure under CI; otherwise reported at this file,
    so the summary folds every such skip into one line per missing part, with its count."""
    if not (report.skipped and isinstance(report.longrepr, tuple) and MISSING in report.longrepr[2]):
        return
    reason = report.longrepr[2].removeprefix("Skipped: ")
    if IN_CI:
        report.outcome = "failed"
        report.longrepr = f"CI=true, so a test may not skip for want of its environment: {reason}"
    else:
        report.longrepr = (__file__, None, reason)


@contextlib.contextmanager
def scratch_postgres(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the test server; dropped on the way out."""
    with postgres.scratch_postgres(POSTGRES_SERVER, f"{prefix}_{os.getpid()}") as url:
        yield url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated once, dropped at the end."""
    if not POSTGRES_SERVER:
        pytest.skip(NO_POSTGRES)
    with scratch_postgres("keyrelease_test") as url:
        asyncio.run(db.apply_migrations(url))
        yield url


def empty_postgres(url: str) -> None:
    async def truncate() -> None:
        conn = await asyncpg.connect(asyncpg_url(url))
        try:
            await conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        finally:
            await conn.close()

    asyncio.run(truncate())


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest) -> str:
    """A migrated, empty database: a copy of a SQLite template, or the run's PostgreSQL
    database with every table emptied."""
    # Tortoise caches INSERT/DELETE statements per connection name, in the first backend's
    # dialect. One process here alternates backends (a real service never does): start clean.
    EXECUTOR_CACHE.clear()
    if request.param == "postgres":
        url = request.getfixturevalue("postgres_url")
        empty_postgres(url)
        return url
    tmp_path: Path = request.getfixturevalue("tmp_path")
    shutil.copy(request.getfixturevalue("migrated_template"), tmp_path / "keyrelease.sqlite3")
    return f"sqlite://{tmp_path / 'keyrelease.sqlite3'}"


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file with every migration applied; each test gets a copy."""
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    asyncio.run(db.apply_migrations(f"sqlite://{path}"))
    return path


def base_env(tmp_path: Path, **overrides: str) -> dict[str, str]:
    env = {
        "KEYRELEASE_VAR_DIR": str(tmp_path / "var"),
        "KEYRELEASE_DATABASE_URL": f"sqlite://{tmp_path / 'keyrelease.sqlite3'}",
        "KEYRELEASE_SECRET_KEY": SECRET_KEY,
        "KEYRELEASE_MAIL_TRANSPORT": "memory",
    }
    env.update(overrides)
    return env


@pytest.fixture
def env_overrides() -> dict[str, str]:
    """Override in a test module to change settings for its app."""
    return {}


@pytest.fixture
def settings(tmp_path: Path, database_url: str, env_overrides: dict[str, str]) -> Settings:
    return Settings.from_env(base_env(tmp_path, KEYRELEASE_DATABASE_URL=database_url, **env_overrides))


@pytest.fixture
def statements(monkeypatch: pytest.MonkeyPatch) -> StatementCounter:
    """Counts the SQL statements the service sends (tests/sqlcount.py). Request it before the
    app starts: on PostgreSQL only a pool created afterwards reports to it."""
    counter = StatementCounter()
    counting_pool(monkeypatch, counter)
    return counter


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


@pytest.fixture
async def app(settings: Settings, clock: FrozenClock) -> AsyncIterator[Any]:
    application = create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: Any) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://keyrelease.test") as http:
        yield http


@dataclass
class WrittenLog:
    """What keyrelease's own handler writes, in both formats, for every record of a test."""

    text: io.StringIO
    json: io.StringIO

    def both(self) -> str:
        return self.text.getvalue() + self.json.getvalue()


@pytest.fixture
def written_log() -> Iterator[WrittenLog]:
    """keyrelease's real log handlers (text and JSON) on the root logger at DEBUG, as
    ``keyrelease serve`` writes to stderr: what a log reader would see."""
    written = WrittenLog(io.StringIO(), io.StringIO())
    handlers = [logs.handler("text", written.text), logs.handler("json", written.json)]
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.DEBUG)
    for handler in handlers:
        root.addHandler(handler)
    try:
        yield written
    finally:
        for handler in handlers:
            root.removeHandler(handler)
        root.setLevel(level)


@dataclass
class AdminUser:
    email: str
    token: str
    institution: str


@dataclass
class Api:
    """GraphQL over the real HTTP stack, and the mail the service sent."""

    client: httpx.AsyncClient
    app: Any

    async def post(self, query: str, variables: dict | None = None, token: str | None = None) -> httpx.Response:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return await self.client.post("/graphql", json={"query": query, "variables": variables or {}}, headers=headers)

    async def gql(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        response = await self.post(query, variables, token)
        assert response.status_code == 200, response.text
        return response.json()

    async def data(self, query: str, variables: dict | None = None, token: str | None = None) -> dict:
        body = await self.gql(query, variables, token)
        assert "errors" not in body, body
        return body["data"]

    async def admin(self, email: str = "ada@uni.example", institution: str = "Example University") -> AdminUser:
        created = await create_admin(self.app.state.services.clock, institution=institution, email=email, name="Ada")
        return AdminUser(email=email, token=created.token, institution=institution)

    # -- the flow, step by step --------------------------------------------------------

    async def create_key(self, admin: AdminUser, **fields: Any) -> dict:
        fields.setdefault("name", "Reporting pipeline")
        fields.setdefault("kind", "INSTITUTIONAL")
        data = await self.data(CREATE_KEY, {"input": fields}, admin.token)
        return data["createKey"]

    async def create_key_with_code(self, admin: AdminUser, **fields: Any) -> tuple[dict, str]:
        """Create a key and wait for its own code mail (found by the key's name, unique unless
        the caller chose one), whatever other mail is still on its way."""
        fields.setdefault("name", f"Key {uuid.uuid4().hex[:8]}")

        def for_this_key(m: Any) -> bool:
            return m.to == admin.email and f"“{fields['name']}”" in m.subject

        before = len([m for m in self.mailbox.messages if for_this_key(m)])
        key = await self.create_key(admin, **fields)
        mails = await self.mailbox.wait_for(for_this_key, count=before + 1)
        match = CODE_LINE.search(mails[before].text)
        assert match, mails[before].text
        return key, match.group(1)

    async def verify(self, admin: AdminUser, key_id: str, code: str) -> dict:
        return (await self.data(VERIFY_KEY, {"input": {"keyId": key_id, "code": code}}, admin.token))["verifyKey"]

    async def resend(self, admin: AdminUser, key_id: str) -> dict:
        return (await self.data(RESEND_CODE, {"input": {"keyId": key_id}}, admin.token))["resendCode"]

    async def reveal(self, admin: AdminUser | None, key_id: str, otp: str | None = None) -> dict:
        variables: dict[str, Any] = {"input": {"keyId": key_id}}
        if otp is not None:
            variables["input"]["oneTimePassword"] = otp
        return (await self.data(REVEAL_KEY, variables, admin.token if admin else None))["revealKey"]

    async def key(self, admin: AdminUser, key_id: str) -> dict | None:
        return (await self.data(KEY_QUERY, {"id": key_id}, admin.token))["key"]

    # -- mail --------------------------------------------------------------------------

    @property
    def mailbox(self) -> Any:
        return self.app.state.services.transport

    async def mails_to(self, address: str, count: int = 1) -> list[Any]:
        return await self.mailbox.wait_for(lambda m: m.to == address, count=count)

    async def code_for(self, admin: AdminUser, nth: int = 1) -> str:
        mails = await self.mails_to(admin.email, nth)
        match = CODE_LINE.search(mails[nth - 1].text)
        assert match, mails[nth - 1].text
        return match.group(1)

    async def otp_for(self, partner_email: str) -> str:
        mails = await self.mails_to(partner_email)
        match = OTP_LINE.search(mails[0].text)
        assert match, mails[0].text
        return match.group(1)


@pytest.fixture
def api(client: httpx.AsyncClient, app: Any) -> Api:
    return Api(client=client, app=app)


KEY_FIELDS = """
    id name kind status clientId createdAt expiresAt verificationDeadline codeExpiresAt
    resendsRemaining attemptsRemaining revealed partnerName partnerEmail legacy
    events { type at detail }
"""
CREATE_KEY = f"""
mutation($input: CreateKeyInput!) {{
  createKey(input: $input) {{
    __typename
    ... on ApiKey {{ {KEY_FIELDS} }}
    ... on Error {{ message }}
    ... on ValidationError {{ field }}
    ... on PendingKeyLimitError {{ limit }}
  }}
}}"""
VERIFY_KEY = f"""
mutation($input: VerifyKeyInput!) {{
  verifyKey(input: $input) {{
    __typename
    ... on ApiKey {{ {KEY_FIELDS} }}
    ... on Error {{ message }}
    ... on ValidationError {{ field }}
  }}
}}"""
RESEND_CODE = f"""
mutation($input: ResendCodeInput!) {{
  resendCode(input: $input) {{
    __typename
    ... on ApiKey {{ {KEY_FIELDS} }}
    ... on Error {{ message }}
  }}
}}"""
REVEAL_KEY = """
mutation($input: RevealKeyInput!) {
  revealKey(input: $input) {
    __typename
    ... on KeyCredentials { clientId clientSecret }
    ... on Error { message }
  }
}"""
REVOKE_KEY = f"""
mutation($input: RevokeKeyInput!) {{
  revokeKey(input: $input) {{
    __typename
    ... on ApiKey {{ {KEY_FIELDS} }}
    ... on Error {{ message }}
  }}
}}"""
KEY_QUERY = f"query($id: ID!) {{ key(id: $id) {{ {KEY_FIELDS} }} }}"


# -- the token endpoint (issue 4) ------------------------------------------------------

FORM = {"Content-Type": "application/x-www-form-urlencoded"}
GRANT = "grant_type=client_credentials"


def basic_auth(client_id: str, secret: str) -> str:
    """An ``Authorization`` header value for HTTP Basic, as most client libraries build it."""
    import base64

    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


async def request_token(
    client: httpx.AsyncClient, client_id: str, secret: str, *, body: str = GRANT
) -> httpx.Response:
    headers = {**FORM, "Authorization": basic_auth(client_id, secret)}
    return await client.post("/ids/auth/login", content=body, headers=headers)


async def released_key(api: Api, admin: AdminUser, **fields: Any) -> tuple[dict, dict]:
    """createKey, verify with the mailed code, reveal: the key and its credentials."""
    import uuid

    fields.setdefault("name", f"Key {uuid.uuid4().hex[:8]}")
    key = await api.create_key(admin, **fields)
    assert key["__typename"] == "ApiKey", key
    code = await code_for_key(api, admin, fields["name"])
    verified = await api.verify(admin, key["id"], code)
    assert verified["__typename"] == "ApiKey" and verified["status"] == "ACTIVE", verified
    creds = await api.reveal(admin, key["id"])
    assert creds["__typename"] == "KeyCredentials", creds
    return key, creds


async def code_for_key(api: Api, admin: AdminUser, key_name: str) -> str:
    """The first code mailed to ``admin`` for the key named ``key_name``."""
    mails = await api.mailbox.wait_for(lambda m: m.to == admin.email and f"“{key_name}”" in m.subject)
    match = CODE_LINE.search(mails[0].text)
    assert match, mails[0].text
    return match.group(1)


@contextlib.asynccontextmanager
async def running_app(settings: Settings, clock: FrozenClock, application: Any = None) -> AsyncIterator[Api]:
    """A second (or third) app on the same database, e.g. after a configuration change; or
    ``application``, built by the test and adjusted before it starts."""
    application = application or create_app(settings, clock=clock)
    async with application.router.lifespan_context(application):
        transport = httpx.ASGITransport(app=application, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://keyrelease.test") as http:
            yield Api(client=http, app=application)


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Print how many generated cases the fuzz tests ran (issue 8: the counts are printed)."""
    from fuzzcounts import COUNTS

    if COUNTS:
        terminalreporter.write_line(
            "fuzz cases run: " + ", ".join(f"{label} {count}" for label, count in sorted(COUNTS.items()))
            + " (no 5xx, no traceback, no internal error, no ERROR record)"
        )

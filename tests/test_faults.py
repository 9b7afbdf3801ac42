"""Faults survived on PostgreSQL, each with real processes.

- PostgreSQL restarted under load: requests during the outage get a clean 503 or GraphQL
  error within a bounded time, never a hang or a traceback; the service recovers by itself;
  nothing committed is lost.
- The connection pool exhausted: requests wait up to the deadline, then get a clean 503.
- A worker SIGKILLed mid-send: the message is delivered after a restart, once.
- The mail provider down for 30 seconds: the mail arrives after it returns, once.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time

import asyncpg
import httpx
import pytest
from environment import empty_postgres, missing, needs_postgres
from dbutil import asyncpg_url, query
from mailservers import RecordingHandler, reserve_port, start_smtp_server

from keyrelease.testing.processes import KEYRELEASE, Server, free_port, run_cli
from keyrelease.testing.settings import base_env

pytestmark = [
    pytest.mark.live,
    needs_postgres,
]

CREATE = "mutation($i: CreateKeyInput!) { createKey(input: $i) { __typename ... on ApiKey { id } } }"
KEYS = "{ keys { edges { node { id status } } } }"


def cluster_name() -> str:
    return os.listdir("/etc/postgresql")[0]


def restart_postgres() -> None:
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", cluster_name(), "main", "restart"],
        check=True,
        capture_output=True,
        timeout=60,
    )


def admin_token(env: dict[str, str], email: str) -> str:
    result = run_cli(env, "admin", "create", "--institution", "Faults U", "--email", email)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


@pytest.fixture
def pg(postgres_url):
    """The run's PostgreSQL database, emptied."""
    empty_postgres(postgres_url)
    return postgres_url


@pytest.fixture
def env(pg, tmp_path):
    postgres_url = pg
    return base_env(
        tmp_path,
        KEYRELEASE_DATABASE_URL=postgres_url,
        KEYRELEASE_MAIL_TRANSPORT="console",
        KEYRELEASE_REQUEST_TIMEOUT_SECONDS="3",
        KEYRELEASE_DATABASE_CONNECT_TIMEOUT_SECONDS="2",
    )


@pytest.mark.skipif(not os.path.isdir("/etc/postgresql"), reason=missing("a local PostgreSQL cluster to restart (/etc/postgresql)"))
async def test_postgres_restart_under_load(env, tmp_path):
    token = admin_token(env, "restart@faults.example")
    server = Server(env=env, log_path=tmp_path / "server.log").start()
    headers = {"Authorization": f"Bearer {token}"}
    outcomes: list[tuple[int, str, float]] = []
    #: (sent, answered, status) of every request, on the same clock as the outage below.
    timeline: list[tuple[float, float, int]] = []
    created: list[str] = []
    stop = asyncio.Event()

    async def load(http: httpx.AsyncClient) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            started = time.monotonic()
            try:
                response = await http.post(
                    "/graphql",
                    json={"query": KEYS if i % 2 else CREATE, "variables": {"i": {"name": f"k{i}", "kind": "INSTITUTIONAL"}}},
                    headers=headers,
                )
                outcomes.append((response.status_code, response.text, time.monotonic() - started))
                timeline.append((started, time.monotonic(), response.status_code))
                data = (response.json().get("data") or {}) if response.status_code == 200 else {}
                key = (data.get("createKey") or {}).get("id")
                if key:
                    created.append(key)
            except httpx.HTTPError as err:
                outcomes.append((0, repr(err), time.monotonic() - started))
                timeline.append((started, time.monotonic(), 0))
            await asyncio.sleep(0.02)

    try:
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            workers = [asyncio.create_task(load(http)) for _ in range(3)]
            await asyncio.sleep(1)
            before = len(created)
            outage_began = time.monotonic()
            await asyncio.to_thread(restart_postgres)
            outage_ended = time.monotonic()
            await asyncio.sleep(3)
            stop.set()
            await asyncio.gather(*workers)
            # Recovered by itself: a fresh request succeeds.
            ok = await http.post("/graphql", json={"query": KEYS}, headers=headers)
            assert ok.status_code == 200 and "errors" not in ok.json(), ok.text
    finally:
        server.stop()
    assert before > 0, "load ran before the restart"
    # Requests really landed while PostgreSQL restarted, and each was answered cleanly.
    during = [status for sent, _, status in timeline if outage_began <= sent <= outage_ended]
    assert during, "no request was sent while PostgreSQL restarted"
    assert set(during) <= {200, 503}, during
    statuses = {status for status, _, _ in outcomes}
    assert statuses <= {200, 503}, [o for o in outcomes if o[0] not in (200, 503)][:3]
    assert all(elapsed < 10 for _, _, elapsed in outcomes), max(e for _, _, e in outcomes)
    assert not [text for _, text, _ in outcomes if "Traceback" in text]
    rows = await query(env["KEYRELEASE_DATABASE_URL"], "SELECT id FROM api_key")
    assert set(created) <= {str(r["id"]) for r in rows}, "a key answered as created was lost"


async def test_exhausted_pool_gives_a_clean_503_within_the_deadline(pg, tmp_path):
    postgres_url = pg
    env = base_env(
        tmp_path,
        KEYRELEASE_DATABASE_URL=postgres_url,
        KEYRELEASE_MAIL_TRANSPORT="console",
        KEYRELEASE_DATABASE_POOL_SIZE="1",
        KEYRELEASE_REQUEST_TIMEOUT_SECONDS="2",
        KEYRELEASE_DISPATCHER="false",
    )
    token = admin_token(env, "pool@faults.example")
    server = Server(env=env, log_path=tmp_path / "server.log").start()
    headers = {"Authorization": f"Bearer {token}"}
    blocker = await asyncpg.connect(asyncpg_url(postgres_url))
    try:
        # Hold the admin's row: createKey locks it, so it holds the pool's only connection.
        tx = blocker.transaction()
        await tx.start()
        await blocker.execute("SELECT * FROM admin FOR UPDATE")
        async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
            async def create_key(delay: float) -> tuple[httpx.Response, float]:
                await asyncio.sleep(delay)
                started = time.monotonic()
                response = await http.post(
                    "/graphql",
                    json={"query": CREATE, "variables": {"i": {"name": "x", "kind": "INSTITUTIONAL"}}},
                    headers=headers,
                )
                return response, time.monotonic() - started

            # The first holds the only connection while it waits for the row lock; the others
            # wait for the connection, then for the lock: each is bounded by its deadline.
            results = await asyncio.gather(*(create_key(0.3 * i) for i in range(3)))
            await tx.rollback()
            for response, elapsed in results:
                assert response.status_code == 503, response.text
                assert elapsed < 2 + 1.5, elapsed
                assert response.headers["retry-after"]
                assert response.json()["errors"][0]["extensions"]["code"] == "SERVICE_UNAVAILABLE"
            after = await http.post("/graphql", json={"query": KEYS}, headers=headers)
            assert after.status_code == 200 and "errors" not in after.json()
    finally:
        await blocker.close()
        server.stop()
    assert (await query(postgres_url, "SELECT count(*) AS n FROM api_key"))[0]["n"] == 0, "the cancelled create rolled back"


class StallingHandler(RecordingHandler):
    """Accepts the conversation but never answers DATA until released."""

    def __init__(self) -> None:
        super().__init__()
        self.stalling = True
        self.stalled = 0

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if self.stalling:
            self.stalled += 1
            while self.stalling:
                await asyncio.sleep(0.05)
            return "451 4.3.0 try again"
        return await super().handle_DATA(server, session, envelope)


async def create_key(server: Server, token: str) -> None:
    """One createKey over HTTP, which queues one code email."""
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        response = await http.post(
            "/graphql",
            json={"query": CREATE, "variables": {"i": {"name": "k", "kind": "INSTITUTIONAL"}}},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert response.json()["data"]["createKey"]["__typename"] == "ApiKey"


def start_worker(env: dict[str, str], log) -> subprocess.Popen:  # type: ignore[no-untyped-def]
    return subprocess.Popen([KEYRELEASE, "worker"], env={**os.environ, **env}, stdout=log, stderr=subprocess.STDOUT)


async def wait_for(condition, timeout: float) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await condition():
            return
        await asyncio.sleep(0.1)
    raise AssertionError("condition not met in time")


async def test_worker_killed_mid_send_delivers_after_restart(pg, tmp_path):
    postgres_url = pg
    from aiosmtpd.controller import Controller

    handler = StallingHandler()
    port = free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port, ready_timeout=5)
    controller.start()
    try:
        env = base_env(
            tmp_path,
            KEYRELEASE_DATABASE_URL=postgres_url,
            KEYRELEASE_DISPATCHER="false",
            KEYRELEASE_MAIL_TRANSPORT="smtp",
            KEYRELEASE_SMTP_HOST="127.0.0.1",
            KEYRELEASE_SMTP_PORT=str(port),
            KEYRELEASE_SMTP_TLS="none",
            KEYRELEASE_SMTP_TIMEOUT_SECONDS="60",
            KEYRELEASE_MAIL_LEASE_SECONDS="6",
        )
        token = admin_token(env, "worker@faults.example")
        server = Server(env=env, log_path=tmp_path / "server.log").start()
        log = open(tmp_path / "worker.log", "ab")  # noqa: SIM115
        worker = start_worker(env, log)
        try:
            await create_key(server, token)

            async def stalled() -> bool:
                return handler.stalled >= 1

            await wait_for(stalled, 15)
            worker.kill()
            worker.wait(5)
            handler.stalling = False
            rows = await query(postgres_url, "SELECT status FROM outbox_message")
            assert [r["status"] for r in rows] == ["SENDING"]
            worker = start_worker(env, log)

            async def delivered() -> bool:
                return len(handler.deliveries) >= 1

            await wait_for(delivered, 20)
            await asyncio.sleep(1)
            assert len(handler.deliveries) == 1
            rows = await query(postgres_url, "SELECT status FROM outbox_message")
            assert [r["status"] for r in rows] == ["SENT"]
        finally:
            worker.kill()
            worker.wait(5)
            server.stop()
    finally:
        controller.stop()


async def test_mail_provider_down_for_thirty_seconds(pg, tmp_path):
    postgres_url = pg
    sock = reserve_port()  # bound, not listening: connections are refused
    port = sock.getsockname()[1]
    env = base_env(
        tmp_path,
        KEYRELEASE_DATABASE_URL=postgres_url,
        KEYRELEASE_MAIL_TRANSPORT="smtp",
        KEYRELEASE_SMTP_HOST="127.0.0.1",
        KEYRELEASE_SMTP_PORT=str(port),
        KEYRELEASE_SMTP_TLS="none",
        KEYRELEASE_MAIL_RETRY_FIRST_SECONDS="1",
        KEYRELEASE_MAIL_RETRY_MAX_SECONDS="4",
        KEYRELEASE_MAIL_MAX_ATTEMPTS="30",
        KEYRELEASE_CODE_TTL_SECONDS="300",
    )
    token = admin_token(env, "down@faults.example")
    server = Server(env=env, log_path=tmp_path / "server.log").start()
    smtp = None
    try:
        await create_key(server, token)
        await asyncio.sleep(30)
        [row] = await query(postgres_url, "SELECT status, attempts FROM outbox_message")
        assert row["status"] == "PENDING" and row["attempts"] >= 3
        smtp = start_smtp_server(sock=sock)

        async def delivered() -> bool:
            return len(smtp.handler.deliveries) >= 1

        await wait_for(delivered, 15)
        await asyncio.sleep(1)
        assert len(smtp.handler.deliveries) == 1
        [row] = await query(postgres_url, "SELECT status FROM outbox_message")
        assert row["status"] == "SENT"
    finally:
        server.stop()
        if smtp:
            smtp.stop()
        sock.close()

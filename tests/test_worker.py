"""``keyrelease worker``: delivers the outbox and records window locks, like ``serve`` does
in-process, and stops cleanly on SIGTERM. A real process against the test database."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dbutil
import pytest

from keyrelease.clock import FrozenClock
from keyrelease.testing.processes import KEYRELEASE

pytestmark = pytest.mark.live

CODE_LINE = re.compile(r"^Verification code: (\d{6})$", re.MULTILINE)


@pytest.fixture
def clock() -> FrozenClock:
    """Real time, an hour ago: the worker runs on the system clock."""
    return FrozenClock(datetime.now(UTC).replace(microsecond=0) - timedelta(hours=1))


@pytest.fixture
def env_overrides() -> dict[str, str]:
    # The service under test queues mail but does not deliver it: the worker does.
    return {"KEYRELEASE_DISPATCHER": "false", "KEYRELEASE_MAIL_TRANSPORT": "console"}


async def wait_for(condition, timeout: float, what: str) -> None:
    try:
        async with asyncio.timeout(timeout):
            while not await condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise TimeoutError(f"timed out waiting for {what}") from None


async def test_the_worker_delivers_mail_records_window_locks_and_stops_on_sigterm(api, settings, clock, tmp_path: Path):
    ada = await api.admin()
    forgotten = await api.create_key(ada, name="Forgotten")  # an hour ago: window closed, code expired
    clock.advance((datetime.now(UTC) - clock.now()).total_seconds())
    fresh = await api.create_key(ada, name="Fresh")  # now
    assert (await api.key(ada, forgotten["id"]))["status"] == "LOCKED"  # derived, not yet recorded
    url = settings.database_url
    out, err = tmp_path / "worker.out", tmp_path / "worker.err"

    with out.open("wb") as stdout, err.open("wb") as stderr:
        worker = subprocess.Popen(
            [KEYRELEASE, "worker"], env={**os.environ, **settings.environ}, stdout=stdout, stderr=stderr
        )
        try:

            async def outbox_settled() -> bool:
                rows = await dbutil.query(url, "SELECT key_id, status FROM outbox_message")
                return {str(r["key_id"]): r["status"] for r in rows} == {forgotten["id"]: "EXPIRED", fresh["id"]: "SENT"}

            async def lock_recorded() -> bool:
                rows = await dbutil.query(url, "SELECT detail FROM key_event WHERE type = 'LOCKED'")
                return [r["detail"] for r in rows] == ["WINDOW"]

            await wait_for(outbox_settled, 15, f"the worker to deliver: {err.read_text()}")
            await wait_for(lock_recorded, 5, f"the worker to record the window lock: {err.read_text()}")

            worker.send_signal(signal.SIGTERM)
            assert worker.wait(timeout=10) == 0
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(5)

    logs = err.read_text()
    assert "worker started (transport console)" in logs
    assert "worker stopped" in logs
    assert "Traceback" not in logs
    printed = out.read_text()
    assert printed.count("Verification code:") == 1  # the expired code was not sent
    code = CODE_LINE.search(printed).group(1)
    assert (await api.verify(ada, fresh["id"], code))["status"] == "ACTIVE"
    events = [e["type"] for e in (await api.key(ada, forgotten["id"]))["events"]]
    assert events == ["CREATED", "CODE_SENT", "LOCKED"]


def test_a_worker_with_a_bad_setting_exits_with_one_line(tmp_path: Path):
    done = subprocess.run(
        [KEYRELEASE, "worker"],
        env={
            **os.environ,
            "KEYRELEASE_VAR_DIR": str(tmp_path / "var"),
            "KEYRELEASE_SECRET_KEY": "test-server-secret-0123456789abcdef-0123456789",
            "KEYRELEASE_MAIL_TRANSPORT": "smtp",
        },
        capture_output=True, text=True, timeout=30,
    )

    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "configuration error: KEYRELEASE_SMTP_HOST: required when KEYRELEASE_MAIL_TRANSPORT is smtp"
    ]

"""The keyrelease benchmark harness (``make bench``; ``make bench-smoke`` for a quick check).

Starts the real service (``keyrelease serve``: uvicorn, one worker) and a bare Starlette JSON
endpoint (bench/bare_app.py, same uvicorn settings), both pinned to core 0, and drives them
with wrk pinned to core 1 (this script pins itself to core 1 too). Every headline figure is a
ratio of two measurements taken side by side in the same run, in alternating rounds, because
absolute numbers on a shared machine are noise.

Environment:
  BENCH_SMOKE=1        every stage for about a second (proves the harness runs; no real numbers)
  BENCH_LARGE_KEYS=N   the number of keys for the scale comparison (default 1,000,000)
  BENCH_DURATION=S     seconds per wrk measurement (default 5)
  BENCH_ROUNDS=N       alternating bare/token/key rounds (default 3)
  BENCH_RSS_REQUESTS=N token requests for the RSS figure (default 100000)
  BENCH_RATE_LIMITS=off  switch the service's rate limits off (default: on, set far above the
                       load so their per-request cost is measured but nothing is refused)
  BENCH_OUT_DIR=DIR    where results go (default bench/results)
  KEYRELEASE_TEST_POSTGRES_URL  also run the token/key/flow stages on a fresh PostgreSQL database
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import platform
import re
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua" / "load.lua"
BIN = Path(sys.executable).parent
KEYRELEASE = str(BIN / "keyrelease")
SECRET_KEY = "bench-server-secret-0123456789abcdef-0123456789abcdef"
BULK_SECRET = "bench-bulk-secret-" + "x" * 32
BASE_KEYS = 1000

SMOKE = os.environ.get("BENCH_SMOKE", "").strip() not in ("", "0", "false", "no")
LARGE_KEYS = int(os.environ.get("BENCH_LARGE_KEYS") or 1_000_000)
DURATION = float(os.environ.get("BENCH_DURATION") or 5)
ROUNDS = int(os.environ.get("BENCH_ROUNDS") or 3)
RSS_REQUESTS = int(os.environ.get("BENCH_RSS_REQUESTS") or 100_000)
WARMUP_REQUESTS = 10_000
OUTBOX_MESSAGES = 400
FLOW_CONCURRENCY = 4
CONNECTIONS = 16
RATE_LIMITS_ON = os.environ.get("BENCH_RATE_LIMITS", "on").strip().lower() not in ("off", "0", "false", "no")
if SMOKE:
    LARGE_KEYS = int(os.environ.get("BENCH_LARGE_KEYS") or 3000)
    DURATION, ROUNDS, RSS_REQUESTS, WARMUP_REQUESTS, OUTBOX_MESSAGES = 1.0, 1, 2000, 300, 20

HAVE_TASKSET = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
SERVER_CORE, LOAD_CORE = "0", "1"

#: Every figure the harness reports; the smoke test checks each is present.
RESULT_KEYS = (
    "meta", "bare_rps", "token_rps", "token_ratio", "key_query_rps", "key_query_ratio", "strawberry_floor",
    "pure_python_stack", "token_latency_at_half", "flow", "scale", "outbox", "rss", "postgres", "targets",
)

KEY_QUERY = "query($id: ID!) { key(id: $id) { id name kind status clientId createdAt expiresAt revealed } }"
CREATE = ("mutation($input: CreateKeyInput!) { createKey(input: $input) { __typename "
          "... on ApiKey { id status } ... on Error { message } } }")
VERIFY = ("mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { __typename "
          "... on ApiKey { id status } ... on Error { message } } }")
REVEAL = ("mutation($input: RevealKeyInput!) { revealKey(input: $input) { __typename "
          "... on KeyCredentials { clientId clientSecret } ... on Error { message } } }")


#: The smallest GraphQL request, for the Strawberry floor (bench/bare_app.py --strawberry).
FLOOR_REQUEST = {"method": "POST", "body": '{"query":"{ hello }"}', "content_type": "application/json"}
#: uvicorn's pure-Python stack, the one behind the reference figures in docs/performance.md.
PURE_PYTHON_STACK = ("--http", "h11", "--loop", "asyncio")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if HAVE_TASKSET else argv


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def basic(client_id: str, secret: str) -> str:
    return "Basic " + base64.b64encode(f"{client_id}:{secret}".encode()).decode()


# -- processes ---------------------------------------------------------------------------


@dataclass
class Proc:
    argv: list[str]
    env: dict[str, str]
    log_path: Path
    port: int = 0
    health: str = "/healthz"
    process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def start(self, timeout: float = 30) -> Proc:
        handle = open(self.log_path, "ab")  # noqa: SIM115
        self.process = subprocess.Popen(self.argv, env={**os.environ, **self.env}, stdout=handle, stderr=subprocess.STDOUT)
        if not self.port:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[0:3]} exited with {self.process.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + self.health, timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise TimeoutError(f"did not start: {self.output()}")

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:] if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


def service(env: dict[str, str], logs: Path, name: str, *extra: str) -> Proc:
    port = free_port()
    argv = pinned(SERVER_CORE, [KEYRELEASE, "serve", "--port", str(port), "--log-level", "warning", *extra])
    return Proc(argv, env, logs / f"{name}.log", port=port)


def run_cli(env: dict[str, str], *args: str) -> str:
    done = subprocess.run([KEYRELEASE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"keyrelease {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


# -- load --------------------------------------------------------------------------------


class Wrk:
    def __init__(self, work: Path) -> None:
        self.work = work
        self.count = 0

    def run(
        self,
        url: str,
        *,
        duration: float,
        connections: int = CONNECTIONS,
        method: str = "GET",
        body: str | None = None,
        content_type: str | None = None,
        auths: list[str] | None = None,
        delay_ms: float | None = None,
        stop_after: int | None = None,
    ) -> dict[str, Any]:
        self.count += 1
        out = self.work / f"wrk-{self.count}.json"
        env = {"BENCH_METHOD": method, "BENCH_PATH": httpx.URL(url).raw_path.decode(), "BENCH_OUT": str(out)}
        if body is not None:
            (self.work / f"body-{self.count}").write_text(body)
            env["BENCH_BODY_FILE"] = str(self.work / f"body-{self.count}")
        if content_type:
            env["BENCH_CONTENT_TYPE"] = content_type
        if auths:
            (self.work / f"auth-{self.count}").write_text("\n".join(auths) + "\n")
            env["BENCH_AUTH_FILE"] = str(self.work / f"auth-{self.count}")
        if delay_ms:
            env["BENCH_DELAY_MS"] = f"{delay_ms:.3f}"
        if stop_after:
            env["BENCH_STOP_AFTER"] = str(stop_after)
        seconds = max(1, round(duration))
        argv = pinned(LOAD_CORE, ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "5s", "-s", str(LUA), url])
        done = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=seconds + 600)
        if done.returncode != 0 or not out.exists():
            raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout}{done.stderr}")
        result = json.loads(out.read_text())
        result["rps"] = result["requests"] / (result["duration_us"] / 1e6) if result["duration_us"] else 0.0
        errors = sum(result[k] for k in ("errors_connect", "errors_read", "errors_write", "errors_status", "errors_timeout"))
        if errors:
            log(f"  warning: {errors} errors in {method} {url} ({result})")
        return result


def require_wrk() -> None:
    if shutil.which("wrk"):
        return
    sys.exit(
        "bench: wrk not found. Install it first: `sudo apt-get install -y wrk` (Debian/Ubuntu), "
        "or run `make bench`, which installs it when it runs as root with apt-get available."
    )


# -- seeding -----------------------------------------------------------------------------


def db_env(tmp: Path, database_url: str, **extra: str) -> dict[str, str]:
    env = {
        "KEYRELEASE_VAR_DIR": str(tmp / "var"),
        "KEYRELEASE_DATABASE_URL": database_url,
        "KEYRELEASE_SECRET_KEY": SECRET_KEY,
        "KEYRELEASE_MAIL_TRANSPORT": "memory",
        "KEYRELEASE_LOG_LEVEL": "warning",
    }
    huge = "1000000000/minute"
    for rule in ("TOKEN_IP", "TOKEN_CLIENT", "PARTNER_IP", "PARTNER_KEY", "ADMIN"):
        env[f"KEYRELEASE_RATE_LIMIT_{rule}"] = huge if RATE_LIMITS_ON else "off"
    # The flows make thousands of keys with one admin: the admin's budget at its ceiling, so it
    # is still spent (and its cost measured) on every createKey and resendCode, never refused.
    for budget in ("MAX_KEYS_PER_ADMIN_PER_DAY", "MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR"):
        env[f"KEYRELEASE_{budget}"] = "100000"
    env.update(extra)
    return env


def create_admin(env: dict[str, str], email: str = "bench@uni.example") -> str:
    out = run_cli(env, "admin", "create", "--institution", "Bench University", "--email", email, "--name", "Bench")
    return out.strip().splitlines()[-1]


class GraphQL:
    def __init__(self, http: httpx.AsyncClient, token: str) -> None:
        self.http = http
        self.headers = {"Authorization": f"Bearer {token}"}

    async def call(self, query: str, variables: dict[str, Any]) -> dict[str, Any]:
        response = await self.http.post("/graphql", json={"query": query, "variables": variables}, headers=self.headers)
        body = response.json()
        if response.status_code != 200 or "errors" in body:
            raise RuntimeError(f"GraphQL {response.status_code}: {body}")
        return body["data"]

    async def flow(self, name: str) -> tuple[str, str, str]:
        """createKey -> verifyKey (code derived from the server secret) -> revealKey."""
        from keyrelease.codes import verification_code

        created = (await self.call(CREATE, {"input": {"name": name, "kind": "INSTITUTIONAL"}}))["createKey"]
        if created["__typename"] != "ApiKey":
            raise RuntimeError(f"createKey: {created}")
        code = verification_code(SECRET_KEY.encode(), uuid.UUID(created["id"]), 0)
        verified = (await self.call(VERIFY, {"input": {"keyId": created["id"], "code": code}}))["verifyKey"]
        if verified.get("status") != "ACTIVE":
            raise RuntimeError(f"verifyKey: {verified}")
        revealed = (await self.call(REVEAL, {"input": {"keyId": created["id"]}}))["revealKey"]
        if revealed["__typename"] != "KeyCredentials":
            raise RuntimeError(f"revealKey: {revealed}")
        return created["id"], revealed["clientId"], revealed["clientSecret"]

    async def create_only(self, name: str) -> None:
        created = (await self.call(CREATE, {"input": {"name": name, "kind": "INSTITUTIONAL"}}))["createKey"]
        if created["__typename"] != "ApiKey":
            raise RuntimeError(f"createKey: {created}")


def seed_flow(url: str, token: str) -> tuple[str, str, str]:
    async def run() -> tuple[str, str, str]:
        async with httpx.AsyncClient(base_url=url, timeout=30) as http:
            return await GraphQL(http, token).flow("Bench seed key")

    return asyncio.run(run())


_COPY_COLUMNS_SKIP = ("id", "client_id", "name", "secret_hash")


def bulk_insert(database_url: str, template_id: str, count: int, region: str = "us-east-1") -> list[str]:
    """Insert ``count`` valid, revealed, ACTIVE keys cloned from the template key's row (same
    institution, timestamps, status fields), each with its own ``<region>#<uuid>`` client ID
    and the secret ``BULK_SECRET``. Returns the new client IDs."""
    secret_hash = hashlib.sha256(BULK_SECRET.encode()).hexdigest()
    client_ids = [f"{region}#{uuid.uuid4()}" for _ in range(count)]
    if database_url.startswith("sqlite://"):
        conn = sqlite3.connect(database_url.removeprefix("sqlite://"))
        try:
            columns = [row[1] for row in conn.execute("PRAGMA table_info(api_key)") if row[1] not in _COPY_COLUMNS_SKIP]
            cols = ", ".join(columns)
            sql = (f"INSERT INTO api_key (id, client_id, name, secret_hash, {cols}) "
                   f"SELECT ?, ?, ?, ?, {cols} FROM api_key WHERE id = ?")
            batch = 50_000
            for start in range(0, count, batch):
                rows = [(str(uuid.uuid4()), cid, f"bulk {start + n}", secret_hash, template_id)
                        for n, cid in enumerate(client_ids[start:start + batch])]
                conn.executemany(sql, rows)
                conn.commit()
        finally:
            conn.close()
        return client_ids

    import asyncpg

    async def pg() -> None:
        conn = await asyncpg.connect(re.sub(r"^(postgres|postgresql|asyncpg)://", "postgresql://", database_url))
        try:
            names = await conn.fetch(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'api_key' ORDER BY ordinal_position")
            columns = [r["column_name"] for r in names if r["column_name"] not in _COPY_COLUMNS_SKIP]
            cols = ", ".join(columns)
            sql = (f"INSERT INTO api_key (id, client_id, name, secret_hash, {cols}) "
                   f"SELECT $1::uuid, $2, $3, $4, {cols} FROM api_key WHERE id = $5::uuid")
            rows = [(uuid.uuid4(), cid, f"bulk {n}", secret_hash, uuid.UUID(template_id)) for n, cid in enumerate(client_ids)]
            await conn.executemany(sql, rows)
            await conn.execute("ANALYZE api_key")
        finally:
            await conn.close()

    asyncio.run(pg())
    return client_ids


def sample(items: list[str], n: int) -> list[str]:
    step = max(1, len(items) // n)
    return items[::step][:n]


# -- stages ------------------------------------------------------------------------------


def token_request_args(auths: list[str]) -> dict[str, Any]:
    return {"method": "POST", "body": "grant_type=client_credentials",
            "content_type": "application/x-www-form-urlencoded", "auths": auths}


def key_query_request(key_id: str, admin_token: str) -> dict[str, Any]:
    return {"method": "POST", "body": json.dumps({"query": KEY_QUERY, "variables": {"id": key_id}}),
            "content_type": "application/json", "auths": [f"Bearer {admin_token}"]}


def check_token(url: str, auth: str) -> None:
    response = httpx.post(url + "/ids/auth/login", content="grant_type=client_credentials",
                          headers={"Authorization": auth, "Content-Type": "application/x-www-form-urlencoded"})
    if response.status_code != 200 or "access_token" not in response.json():
        raise RuntimeError(f"token endpoint check failed: {response.status_code} {response.text}")


async def flows(url: str, token: str, *, concurrency: int, duration: float) -> dict[str, Any]:
    """Full createKey->verifyKey->revealKey flows, ``concurrency`` at a time, for ``duration`` s."""
    durations: list[float] = []
    errors: list[str] = []
    stop_at = time.perf_counter() + duration

    async def worker(http: httpx.AsyncClient, n: int) -> None:
        api = GraphQL(http, token)
        i = 0
        while time.perf_counter() < stop_at:
            i += 1
            started = time.perf_counter()
            try:
                await api.flow(f"Flow {n}-{i}-{uuid.uuid4().hex[:6]}")
            except Exception as err:  # noqa: BLE001 - counted and reported
                errors.append(str(err)[:300])
                await asyncio.sleep(0.05)
                continue
            durations.append(time.perf_counter() - started)

    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as http:
        began = time.perf_counter()
        await asyncio.gather(*(worker(http, n) for n in range(concurrency)))
        elapsed = time.perf_counter() - began
    if errors:
        log(f"  warning: {len(errors)} failed flows, first: {errors[0]}")
    return {
        "flows": len(durations),
        "errors": len(errors),
        "per_s": len(durations) / elapsed if elapsed else 0.0,
        "p50_ms": statistics.median(durations) * 1000 if durations else None,
        "p99_ms": quantile(durations, 0.99) * 1000 if durations else None,
    }


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else 0.0


def core_stages(label: str, env: dict[str, str], database_url: str, bare: Proc, wrk: Wrk, logs: Path,
                *, measure_rss: bool, floor: Proc | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Token endpoint, key(id) query, latency at half load, flows (and RSS on request), on one
    database, side by side with the bare endpoint. Returns (results, context for later stages)."""
    log(f"[{label}] seeding: admin, one key through GraphQL, {BASE_KEYS} keys in bulk")
    admin_token = create_admin(env)
    server = service(env, logs, f"service-{label}").start()
    results: dict[str, Any] = {}
    try:
        key_id, client_id, secret = seed_flow(server.url, admin_token)
        bulk_ids = bulk_insert(database_url, key_id, BASE_KEYS)
        auths = [basic(cid, BULK_SECRET) for cid in bulk_ids]
        check_token(server.url, auths[0])
        check_token(server.url, basic(client_id, secret))
        token_url = server.url + "/ids/auth/login"
        gql = key_query_request(key_id, admin_token)

        log(f"[{label}] warm-up")
        wrk.run(bare.url + "/", duration=1)
        wrk.run(token_url, duration=1, **token_request_args(auths))
        wrk.run(server.url + "/graphql", duration=1, **gql)

        bare_rps, token_rps, key_rps, token_runs, key_runs, floor_rps = [], [], [], [], [], []
        for n in range(ROUNDS):
            log(f"[{label}] round {n + 1}/{ROUNDS}: bare, token, key(id){', Strawberry floor' if floor else ''}"
                f" for {DURATION:g} s each")
            bare_rps.append(wrk.run(bare.url + "/", duration=DURATION)["rps"])
            token_runs.append(wrk.run(token_url, duration=DURATION, **token_request_args(auths)))
            token_rps.append(token_runs[-1]["rps"])
            key_runs.append(wrk.run(server.url + "/graphql", duration=DURATION, **gql))
            key_rps.append(key_runs[-1]["rps"])
            if floor is not None:
                floor_rps.append(wrk.run(floor.url + "/graphql", duration=DURATION, **FLOOR_REQUEST)["rps"])
        if floor_rps:
            results["strawberry_floor"] = {
                "rps": median(floor_rps), "ratio": median([f / b for f, b in zip(floor_rps, bare_rps, strict=True)]),
                "key_query_share": median([k / f for k, f in zip(key_rps, floor_rps, strict=True)]),
            }
        results["bare_rps"] = median(bare_rps)
        results["token_rps"] = median(token_rps)
        results["key_query_rps"] = median(key_rps)
        # Ratios per round (each pair measured back to back), then the median of the rounds.
        results["token_ratio"] = median([t / b for t, b in zip(token_rps, bare_rps, strict=True)])
        results["key_query_ratio"] = median([k / b for k, b in zip(key_rps, bare_rps, strict=True)])
        results["rounds"] = {"bare_rps": bare_rps, "token_rps": token_rps, "key_query_rps": key_rps,
                             "token_p50_ms_saturated": [r["lat_p50_us"] / 1000 for r in token_runs],
                             "token_status_errors": sum(r["errors_status"] for r in token_runs),
                             "key_status_errors": sum(r["errors_status"] for r in key_runs)}

        # Latency at half the maximum rate: wrk with a fixed think time per connection
        # (closed loop, rate-limited), calibrated once to land near the target rate.
        target = results["token_rps"] / 2
        conns = 8
        delay = conns * 1000 / target
        probe = wrk.run(token_url, duration=max(1, DURATION / 2), connections=conns, delay_ms=delay,
                        **token_request_args(auths))
        overhead = conns * 1000 / max(probe["rps"], 1) - delay  # per-request time not spent waiting
        delay = max(0.5 * conns * 1000 / target, conns * 1000 / target - overhead)  # never more than 2x the target
        log(f"[{label}] latency at 50% of max ({target:.0f} req/s target)")
        half = wrk.run(token_url, duration=DURATION * 2, connections=conns, delay_ms=delay, **token_request_args(auths))
        results["token_latency_at_half"] = {
            "target_rps": target, "achieved_rps": half["rps"], "connections": conns,
            "p50_ms": half["lat_p50_us"] / 1000, "p90_ms": half["lat_p90_us"] / 1000,
            "p99_ms": half["lat_p99_us"] / 1000, "max_ms": half["lat_max_us"] / 1000,
            "generator": "wrk + Lua delay() (closed loop, fixed think time per connection)",
        }

        if measure_rss:
            log(f"[{label}] RSS: {WARMUP_REQUESTS} warm-up requests, then {RSS_REQUESTS} token requests")
            rate = max(results["token_rps"], 50.0)

            def send(count: int) -> int:
                # wrk's thread:stop() ends the requests but wrk still waits out -d, so the
                # duration is sized from the measured rate and topped up until enough were sent.
                sent = 0
                while sent < count:
                    left = count - sent
                    sent += wrk.run(token_url, duration=left / rate * 1.15 + 1, stop_after=left,
                                    **token_request_args(auths))["requests"]
                return sent

            send(WARMUP_REQUESTS)
            time.sleep(0.5)
            warm = rss_kb(server.pid)
            sent = send(RSS_REQUESTS)
            time.sleep(0.5)
            after = rss_kb(server.pid)
            results["rss"] = {"warm_kb": warm, "after_kb": after, "requests": sent,
                              "growth_pct": 100 * (after - warm) / warm}

        log(f"[{label}] flows: one at a time, then {FLOW_CONCURRENCY} at a time")
        single = asyncio.run(flows(server.url, admin_token, concurrency=1, duration=DURATION))
        parallel = asyncio.run(flows(server.url, admin_token, concurrency=FLOW_CONCURRENCY, duration=DURATION))
        results["flow"] = {"p50_ms": single["p50_ms"], "p99_ms": single["p99_ms"], "sequential_per_s": single["per_s"],
                           "per_s": parallel["per_s"], "concurrency": FLOW_CONCURRENCY,
                           "concurrent_p50_ms": parallel["p50_ms"], "errors": single["errors"] + parallel["errors"]}
    finally:
        server.stop()
    return results, {"admin_token": admin_token, "key_id": key_id, "bulk_ids": bulk_ids}


def reference_stage(env: dict[str, str], ctx: dict[str, Any], wrk: Wrk, logs: Path) -> dict[str, Any]:
    """The token and key(id) ratios again with uvicorn's pure-Python stack (h11 and asyncio) on
    both sides: the stack the performance issue's reference figures were measured on."""
    bare_port = free_port()
    bare = Proc(pinned(SERVER_CORE, [sys.executable, str(BENCH / "bare_app.py"), "--port", str(bare_port),
                                     *PURE_PYTHON_STACK]), {}, logs / "bare-h11.log", port=bare_port).start()
    server = service(env, logs, "service-h11", *PURE_PYTHON_STACK).start()
    try:
        auths = [basic(cid, BULK_SECRET) for cid in ctx["bulk_ids"]]
        token_url = server.url + "/ids/auth/login"
        gql = key_query_request(ctx["key_id"], ctx["admin_token"])
        wrk.run(bare.url + "/", duration=1)
        wrk.run(token_url, duration=1, **token_request_args(auths))
        wrk.run(server.url + "/graphql", duration=1, **gql)
        bare_rps, token_rps, key_rps = [], [], []
        for n in range(ROUNDS):
            log(f"[h11] round {n + 1}/{ROUNDS}: bare, token, key(id) on h11 + asyncio")
            bare_rps.append(wrk.run(bare.url + "/", duration=DURATION)["rps"])
            token_rps.append(wrk.run(token_url, duration=DURATION, **token_request_args(auths))["rps"])
            key_rps.append(wrk.run(server.url + "/graphql", duration=DURATION, **gql)["rps"])
    finally:
        server.stop()
        bare.stop()
    return {
        "stack": "uvicorn --http h11 --loop asyncio",
        "bare_rps": median(bare_rps), "token_rps": median(token_rps), "key_query_rps": median(key_rps),
        "token_ratio": median([t / b for t, b in zip(token_rps, bare_rps, strict=True)]),
        "key_query_ratio": median([k / b for k, b in zip(key_rps, bare_rps, strict=True)]),
    }


def scale_stage(tmp: Path, small_db: Path, template_id: str, small_ids: list[str], wrk: Wrk, logs: Path) -> dict[str, Any]:
    """Token p50 with BASE_KEYS keys versus LARGE_KEYS keys: two servers, one request at a time
    (so p50 is the service time), alternating between the two databases."""
    large_db = tmp / "large.sqlite3"
    shutil.copy(small_db, large_db)
    log(f"[scale] inserting {LARGE_KEYS - BASE_KEYS} more keys (total {LARGE_KEYS})")
    started = time.perf_counter()
    large_ids = small_ids + bulk_insert(f"sqlite://{large_db}", template_id, LARGE_KEYS - BASE_KEYS)
    insert_s = time.perf_counter() - started
    small_env = db_env(tmp, f"sqlite://{small_db}")
    large_env = db_env(tmp, f"sqlite://{large_db}")
    small = service(small_env, logs, "scale-small").start()
    large = service(large_env, logs, "scale-large").start()
    try:
        small_auths = [basic(c, BULK_SECRET) for c in sample(small_ids, 1000)]
        large_auths = [basic(c, BULK_SECRET) for c in sample(large_ids, 1000)]
        check_token(small.url, small_auths[-1])
        check_token(large.url, large_auths[-1])
        for proc, auths in ((small, small_auths), (large, large_auths)):
            wrk.run(proc.url + "/ids/auth/login", duration=1, connections=1, **token_request_args(auths))
        small_p50, large_p50 = [], []
        for n in range(ROUNDS):
            log(f"[scale] round {n + 1}/{ROUNDS}")
            for proc, auths, into in ((small, small_auths, small_p50), (large, large_auths, large_p50)):
                r = wrk.run(proc.url + "/ids/auth/login", duration=DURATION, connections=1, **token_request_args(auths))
                into.append(r["lat_p50_us"] / 1000)
    finally:
        small.stop()
        large.stop()
    ratios = [lg / sm for sm, lg in zip(small_p50, large_p50, strict=True)]
    return {"small_keys": BASE_KEYS + 1, "large_keys": LARGE_KEYS + 1, "small_p50_ms": median(small_p50),
            "large_p50_ms": median(large_p50), "ratio": median(ratios), "rounds_small_p50_ms": small_p50,
            "rounds_large_p50_ms": large_p50, "insert_seconds": insert_s,
            "note": "fewer than the 1,000,000 keys of the target (BENCH_LARGE_KEYS)" if LARGE_KEYS < 1_000_000 else ""}


def outbox_stage(tmp: Path, base_db: Path, admin_token: str, logs: Path) -> dict[str, Any]:
    """Queue OUTBOX_MESSAGES verification mails with the dispatcher off, then time
    ``keyrelease worker`` delivering them to a local SMTP server (aiosmtpd, discarding)."""
    db_path = tmp / "outbox.sqlite3"
    shutil.copy(base_db, db_path)
    url = f"sqlite://{db_path}"
    env = db_env(tmp, url, KEYRELEASE_DISPATCHER="false", KEYRELEASE_MAX_PENDING_KEYS_PER_ADMIN="1000000")
    server = service(env, logs, "outbox-queue").start()
    log(f"[outbox] queueing {OUTBOX_MESSAGES} messages")
    try:
        async def queue() -> None:
            async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
                api = GraphQL(http, admin_token)
                sem = asyncio.Semaphore(4)

                async def one(n: int) -> None:
                    async with sem:
                        await api.create_only(f"Outbox {n}")

                await asyncio.gather(*(one(n) for n in range(OUTBOX_MESSAGES)))

        asyncio.run(queue())
    finally:
        server.stop()
    with sqlite3.connect(db_path) as conn:
        queued = conn.execute("SELECT count(*) FROM outbox_message WHERE status = 'PENDING'").fetchone()[0]
    smtp_port = free_port()
    smtp = Proc(pinned(LOAD_CORE, [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                                   "-l", f"127.0.0.1:{smtp_port}"]), {}, logs / "smtp.log")
    smtp.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", smtp_port)) == 0:
                break
        time.sleep(0.05)
    worker_env = {**env, "KEYRELEASE_MAIL_TRANSPORT": "smtp", "KEYRELEASE_SMTP_HOST": "127.0.0.1",
                  "KEYRELEASE_SMTP_PORT": str(smtp_port), "KEYRELEASE_SMTP_TLS": "none", "KEYRELEASE_DISPATCHER": "true"}
    worker = Proc(pinned(SERVER_CORE, [KEYRELEASE, "worker"]), worker_env, logs / "worker.log")
    log(f"[outbox] delivering {queued} messages with `keyrelease worker` to SMTP on :{smtp_port}")
    started = time.perf_counter()
    worker.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with sqlite3.connect(db_path) as conn:
                left = conn.execute("SELECT count(*) FROM outbox_message WHERE status IN ('PENDING', 'SENDING')").fetchone()[0]
            if left == 0:
                break
            if worker.process and worker.process.poll() is not None:
                raise RuntimeError(f"worker exited: {worker.output()}")
            time.sleep(0.1)
        wall = time.perf_counter() - started
    finally:
        worker.stop()
        smtp.stop()
    with sqlite3.connect(db_path) as conn:
        counts = dict(conn.execute("SELECT status, count(*) FROM outbox_message GROUP BY status").fetchall())
        stamps = [datetime.fromisoformat(r[0]) for r in conn.execute(
            "SELECT sent_at FROM outbox_message WHERE status = 'SENT' AND sent_at IS NOT NULL ORDER BY sent_at DESC LIMIT ?",
            (queued,))]
    span = (max(stamps) - min(stamps)).total_seconds() if len(stamps) > 1 else 0.0
    return {"messages": queued, "sent": len(stamps), "statuses": counts,
            "per_s": (len(stamps) - 1) / span if span > 0 else 0.0,
            "wall_seconds_incl_worker_start": wall, "transport": "smtp (aiosmtpd Sink, no TLS), one connection per message"}


def postgres_stages(server_url: str, tmp: Path, bare: Proc, wrk: Wrk, logs: Path) -> dict[str, Any]:
    from keyrelease.testing.postgres import scratch_postgres

    with scratch_postgres(server_url, f"keyrelease_bench_{os.getpid()}") as database_url:
        env = db_env(tmp / "pg", database_url)
        run_cli(env, "migrate")
        results, _ = core_stages("postgres", env, database_url, bare, wrk, logs, measure_rss=False)
        return results


# -- report ------------------------------------------------------------------------------

TARGETS = (
    ("token_ratio", "token RPS / bare RPS", ">=", 0.5),
    ("token_p99_at_half_ms", "token p99 at 50% of max rate (ms)", "<", 10.0),
    ("key_query_ratio", "key(id) RPS / bare RPS", ">=", 0.25),
    ("flow_p50_ms", "create->verify->reveal flow p50 (ms)", "<", 15.0),
    ("scale_ratio", "token p50, many keys / 1k keys", "<=", 1.2),
    ("rss_growth_pct", "RSS growth over the token requests (%)", "<", 10.0),
)


def evaluate(results: dict[str, Any]) -> dict[str, Any]:
    values = {
        "token_ratio": results["token_ratio"],
        "token_p99_at_half_ms": results["token_latency_at_half"]["p99_ms"],
        "key_query_ratio": results["key_query_ratio"],
        "flow_p50_ms": results["flow"]["p50_ms"],
        "scale_ratio": results["scale"]["ratio"],
        "rss_growth_pct": results["rss"]["growth_pct"],
    }
    out = {}
    for key, label, op, bound in TARGETS:
        value = values[key]
        met = value is not None and (value >= bound if op == ">=" else value < bound if op == "<" else value <= bound)
        out[key] = {"label": label, "target": f"{op} {bound:g}", "value": value, "met": bool(met)}
    return out


def fmt(value: Any, digits: int = 2) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def markdown(results: dict[str, Any]) -> str:
    m = results["meta"]
    h, f, s, o, r = (results["token_latency_at_half"], results["flow"], results["scale"], results["outbox"],
                     results["rss"])
    fl, ref = results["strawberry_floor"], results["pure_python_stack"]
    rows = [
        ("bare Starlette JSON endpoint", f"{fmt(results['bare_rps'], 0)} req/s", ""),
        ("token endpoint", f"{fmt(results['token_rps'], 0)} req/s", f"**{fmt(results['token_ratio'])} × bare**"),
        ("`key(id)` GraphQL query", f"{fmt(results['key_query_rps'], 0)} req/s",
         f"**{fmt(results['key_query_ratio'])} × bare**"),
        ("Strawberry floor: `{ hello }`, nothing else", f"{fmt(fl['rps'], 0)} req/s",
         f"{fmt(fl['ratio'])} × bare; `key(id)` runs at {fmt(fl['key_query_share'])} × this"),
        (f"pure-Python stack ({ref['stack']}): bare", f"{fmt(ref['bare_rps'], 0)} req/s", ""),
        ("pure-Python stack: token endpoint", f"{fmt(ref['token_rps'], 0)} req/s",
         f"**{fmt(ref['token_ratio'])} × its bare**"),
        ("pure-Python stack: `key(id)`", f"{fmt(ref['key_query_rps'], 0)} req/s",
         f"**{fmt(ref['key_query_ratio'])} × its bare**"),
        ("token latency at 50% of max",
         f"p50 {fmt(h['p50_ms'])} ms, p99 {fmt(h['p99_ms'])} ms",
         f"at {fmt(h['achieved_rps'], 0)} req/s (target {fmt(h['target_rps'], 0)})"),
        ("create→verify→reveal flow", f"p50 {fmt(f['p50_ms'])} ms (one at a time)",
         f"{fmt(f['per_s'], 1)} flows/s with {f['concurrency']} in parallel"),
        (f"token p50, {s['small_keys']:,} vs {s['large_keys']:,} keys",
         f"{fmt(s['small_p50_ms'], 3)} ms vs {fmt(s['large_p50_ms'], 3)} ms", f"**ratio {fmt(s['ratio'])}**"),
        ("outbox → local SMTP", f"{fmt(o['per_s'], 1)} messages/s", f"{o['sent']} messages"),
        ("server RSS", f"{fmt(r['warm_kb'] / 1024, 1)} MiB → {fmt(r['after_kb'] / 1024, 1)} MiB",
         f"**{fmt(r['growth_pct'])}%** over {r['requests']:,} token requests"),
    ]
    pg = results.get("postgres")
    if pg:
        rows += [
            ("PostgreSQL: token endpoint", f"{fmt(pg['token_rps'], 0)} req/s", f"**{fmt(pg['token_ratio'])} × bare**"),
            ("PostgreSQL: `key(id)`", f"{fmt(pg['key_query_rps'], 0)} req/s", f"**{fmt(pg['key_query_ratio'])} × bare**"),
            ("PostgreSQL: token at 50% of max", f"p50 {fmt(pg['token_latency_at_half']['p50_ms'])} ms, "
             f"p99 {fmt(pg['token_latency_at_half']['p99_ms'])} ms", ""),
            ("PostgreSQL: flow", f"p50 {fmt(pg['flow']['p50_ms'])} ms", f"{fmt(pg['flow']['per_s'], 1)} flows/s"),
        ]
    lines = [
        f"Run {m['timestamp']}{' (SMOKE: not real numbers)' if m['smoke'] else ''}; "
        f"{m['rounds']} rounds × {m['duration_s']:g} s; load average {m['loadavg_before']} before, "
        f"{m['loadavg_after']} after; {m['cpus']} CPUs; pinning: {m['pinning']}.",
        "",
        "| figure | measured | ratio / note |",
        "|---|---|---|",
        *[f"| {a} | {b} | {c} |" for a, b, c in rows],
        "",
        "| target | value | met |",
        "|---|---|---|",
        *[f"| {t['label']} {t['target']} | {fmt(t['value'])} | {'yes' if t['met'] else '**no**'} |"
          for t in results["targets"].values()],
    ]
    if not pg:
        lines += ["", "PostgreSQL: not run (set KEYRELEASE_TEST_POSTGRES_URL)."]
    return "\n".join(lines) + "\n"


def chart(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log("matplotlib not installed (pip install -e '.[bench]'); no chart")
        return False
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.2))
    names = ["bare Starlette", "token endpoint", "key(id) query", "Strawberry floor"]
    values = [results["bare_rps"], results["token_rps"], results["key_query_rps"], results["strawberry_floor"]["rps"]]
    colours = ["#999999", "#2b6cb0", "#2f855a", "#cccccc"]
    if results.get("postgres"):
        names += ["token (PostgreSQL)", "key(id) (PostgreSQL)"]
        values += [results["postgres"]["token_rps"], results["postgres"]["key_query_rps"]]
        colours += ["#63b3ed", "#68d391"]
    ratios = [1.0, results["token_ratio"], results["key_query_ratio"], results["strawberry_floor"]["ratio"]]
    if results.get("postgres"):
        ratios += [results["postgres"]["token_ratio"], results["postgres"]["key_query_ratio"]]
    bars = left.bar(names, values, color=colours)
    for bar, value, ratio in zip(bars, values, ratios, strict=True):
        # each ratio against the bare endpoint measured in the same rounds
        left.annotate(f"{value:,.0f}\n({ratio:.2f}×)", (bar.get_x() + bar.get_width() / 2, value),
                      ha="center", va="bottom", fontsize=8)
    left.set_ylabel("requests / second (one uvicorn worker, one core)")
    left.set_title("Throughput, side by side in one run")
    left.tick_params(axis="x", labelsize=8, rotation=15)
    left.set_ylim(0, max(values) * 1.25)
    targets = results["targets"]
    labels = [t["label"].replace(" (", "\n(") for t in targets.values()]
    bounds = [float(t["target"].split()[1]) for t in targets.values()]
    # headroom: > 1 means met, whichever way the target points (>= bound or < bound)
    # capped at 100x so a near-zero value (RSS growth) does not squash the rest
    headroom = [min(100.0, max(1e-3, ((t["value"] or 0) / b) if t["target"].startswith(">")
                               else (b / max(t["value"] or 1e-9, 1e-9))))
                for t, b in zip(targets.values(), bounds, strict=True)]
    colors = ["#2f855a" if t["met"] else "#c53030" for t in targets.values()]
    right.barh(labels, headroom, color=colors)
    right.set_xscale("log")
    right.axvline(1.0, color="black", linewidth=1)
    right.set_xlabel("headroom vs target (log, capped at 100; > 1, green: met)")
    right.set_title("Targets")
    right.tick_params(axis="y", labelsize=7)
    right.invert_yaxis()
    fig.suptitle(f"keyrelease bench {results['meta']['timestamp']}{' (smoke)' if results['meta']['smoke'] else ''}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def main() -> int:
    require_wrk()
    if HAVE_TASKSET:
        os.sched_setaffinity(0, {int(LOAD_CORE)})
    timestamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_root = Path(os.environ.get("BENCH_OUT_DIR") or BENCH / "results")
    out_dir = out_root / timestamp
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs"
    logs.mkdir()
    wrk_version = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    import starlette
    import uvicorn

    meta = {
        "timestamp": timestamp, "smoke": SMOKE, "duration_s": DURATION, "rounds": ROUNDS,
        "cpus": os.cpu_count(), "loadavg_before": loadavg(), "python": platform.python_version(),
        "uvicorn": uvicorn.__version__, "starlette": starlette.__version__, "wrk": (wrk_version or ["?"])[0],
        "pinning": f"server core {SERVER_CORE}, load core {LOAD_CORE}" if HAVE_TASKSET else "none (no taskset or 1 CPU)",
        "load_tool": f"wrk -t1 -c{CONNECTIONS} (closed loop)", "large_keys": LARGE_KEYS,
        "rate_limits": "on, set to 1e9/minute" if RATE_LIMITS_ON else "off",
        "uvicorn_loop_http": _uvicorn_impl(),
    }
    log(f"results -> {out_dir}{' (SMOKE)' if SMOKE else ''}")
    results: dict[str, Any] = {"meta": meta}
    with tempfile.TemporaryDirectory(prefix="keyrelease-bench-") as tmp_name:
        tmp = Path(tmp_name)
        wrk = Wrk(tmp)
        bare_port = free_port()
        bare = Proc(pinned(SERVER_CORE, [sys.executable, str(BENCH / "bare_app.py"), "--port", str(bare_port)]), {},
                    logs / "bare.log", port=bare_port).start()
        floor_port = free_port()
        floor = Proc(pinned(SERVER_CORE, [sys.executable, str(BENCH / "bare_app.py"), "--port", str(floor_port),
                                          "--strawberry"]), {}, logs / "strawberry.log", port=floor_port).start()
        try:
            main_db = tmp / "keyrelease.sqlite3"
            env = db_env(tmp, f"sqlite://{main_db}")
            core, ctx = core_stages("sqlite", env, f"sqlite://{main_db}", bare, wrk, logs, measure_rss=True,
                                    floor=floor)
            floor.stop()
            results.update({k: core[k] for k in ("bare_rps", "token_rps", "token_ratio", "key_query_rps",
                                                 "key_query_ratio", "strawberry_floor", "token_latency_at_half",
                                                 "flow", "rss")})
            results["rounds"] = core["rounds"]
            results["pure_python_stack"] = reference_stage(env, ctx, wrk, logs)
            results["scale"] = scale_stage(tmp, main_db, ctx["key_id"], ctx["bulk_ids"], wrk, logs)
            results["outbox"] = outbox_stage(tmp, main_db, ctx["admin_token"], logs)
            pg_url = os.environ.get("KEYRELEASE_TEST_POSTGRES_URL", "").strip()
            results["postgres"] = postgres_stages(pg_url, tmp, bare, wrk, logs) if pg_url else None
        finally:
            bare.stop()
            floor.stop()
    meta["loadavg_after"] = loadavg()
    results["targets"] = evaluate(results)
    missing = [k for k in RESULT_KEYS if k not in results]
    assert not missing, missing

    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    table = markdown(results)
    (out_dir / "results.md").write_text(table)
    chart(results, out_dir / "chart.png")
    latest = out_root / "latest"
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.is_dir():
        shutil.rmtree(latest)
    shutil.copytree(out_dir, latest, ignore=shutil.ignore_patterns("logs"))
    print()
    print(table)
    log(f"written: {out_dir}/results.json, results.md, chart.png (copied to {latest})")
    return 0


def _uvicorn_impl() -> str:
    import importlib.util

    loop = "uvloop" if importlib.util.find_spec("uvloop") else "asyncio"
    http = "httptools" if importlib.util.find_spec("httptools") else "h11"
    return f"loop={loop}, http={http} (uvicorn 'auto')"


if __name__ == "__main__":
    sys.exit(main())

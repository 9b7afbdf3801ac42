"""The measurements, one function a stage: the token endpoint and ``key(id)`` side by side with
the bare endpoint (and the Strawberry floor), latency at half load, RSS, the full flow; the same
on uvicorn's pure-Python stack; few keys against many; the outbox; PostgreSQL."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
from options import DURATION, FLOW_CONCURRENCY, LARGE_KEYS, OUTBOX_MESSAGES, ROUNDS, RSS_REQUESTS, WARMUP_REQUESTS, log
from processes import Process, Wrk, bare_app, rss_kb, run_cli, service, smtp_sink, worker
from seeding import (
    BASE_KEYS,
    BULK_SECRET,
    KEY_QUERY,
    GraphQL,
    bulk_insert,
    create_admin,
    db_env,
    sample,
    seed_flow,
)

from keyrelease.testing.tokens import FORM, GRANT, basic_auth

#: The smallest GraphQL request, for the Strawberry floor (bench/bare_app.py --strawberry).
FLOOR_REQUEST = {"method": "POST", "body": '{"query":"{ hello }"}', "content_type": "application/json"}
#: uvicorn's pure-Python stack, the one behind the reference figures in docs/performance.md.
PURE_PYTHON_STACK = ("--http", "h11", "--loop", "asyncio")


def token_request_args(auths: list[str]) -> dict[str, Any]:
    return {"method": "POST", "body": GRANT, "content_type": FORM["Content-Type"], "auths": auths}


def key_query_request(key_id: str, admin_token: str) -> dict[str, Any]:
    return {"method": "POST", "body": json.dumps({"query": KEY_QUERY, "variables": {"id": key_id}}),
            "content_type": "application/json", "auths": [f"Bearer {admin_token}"]}


def check_token(url: str, auth: str) -> None:
    response = httpx.post(url + "/ids/auth/login", content=GRANT, headers={**FORM, "Authorization": auth})
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


def core_stages(label: str, env: dict[str, str], database_url: str, bare: Process, wrk: Wrk, logs: Path,
                *, measure_rss: bool, floor: Process | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Token endpoint, key(id) query, latency at half load, flows (and RSS on request), on one
    database, side by side with the bare endpoint. Returns (results, context for later stages)."""
    log(f"[{label}] seeding: admin, one key through GraphQL, {BASE_KEYS} keys in bulk")
    admin_token = create_admin(env)
    server = service(env, logs, f"service-{label}").start()
    results: dict[str, Any] = {}
    try:
        key_id, client_id, secret = seed_flow(server.url, admin_token)
        bulk_ids = bulk_insert(database_url, key_id, BASE_KEYS)
        auths = [basic_auth(cid, BULK_SECRET) for cid in bulk_ids]
        check_token(server.url, auths[0])
        check_token(server.url, basic_auth(client_id, secret))
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
    both sides: the stack the reference figures in docs/performance.md were measured on."""
    bare = bare_app(logs, "bare-h11", *PURE_PYTHON_STACK).start()
    server = service(env, logs, "service-h11", *PURE_PYTHON_STACK).start()
    try:
        auths = [basic_auth(cid, BULK_SECRET) for cid in ctx["bulk_ids"]]
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
        small_auths = [basic_auth(c, BULK_SECRET) for c in sample(small_ids, 1000)]
        large_auths = [basic_auth(c, BULK_SECRET) for c in sample(large_ids, 1000)]
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
    smtp, smtp_port = smtp_sink(logs)
    worker_env = {**env, "KEYRELEASE_MAIL_TRANSPORT": "smtp", "KEYRELEASE_SMTP_HOST": "127.0.0.1",
                  "KEYRELEASE_SMTP_PORT": str(smtp_port), "KEYRELEASE_SMTP_TLS": "none", "KEYRELEASE_DISPATCHER": "true"}
    delivering = worker(worker_env, logs)
    log(f"[outbox] delivering {queued} messages with `keyrelease worker` to SMTP on :{smtp_port}")
    started = time.perf_counter()
    delivering.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            with sqlite3.connect(db_path) as conn:
                left = conn.execute("SELECT count(*) FROM outbox_message WHERE status IN ('PENDING', 'SENDING')").fetchone()[0]
            if left == 0:
                break
            if delivering.process and delivering.process.poll() is not None:
                raise RuntimeError(f"worker exited: {delivering.output()}")
            time.sleep(0.1)
        wall = time.perf_counter() - started
    finally:
        delivering.stop()
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


def postgres_stages(server_url: str, tmp: Path, bare: Process, wrk: Wrk, logs: Path) -> dict[str, Any]:
    from keyrelease.testing.postgres import scratch_postgres

    with scratch_postgres(server_url, f"keyrelease_bench_{os.getpid()}") as database_url:
        env = db_env(tmp / "pg", database_url)
        run_cli(env, "migrate")
        results, _ = core_stages("postgres", env, database_url, bare, wrk, logs, measure_rss=False)
        return results

"""The stages of issue 19: the token endpoint against its floor and a certified peer, the cost of
the access log, ``/healthz`` against the bare endpoint, one worker against two on PostgreSQL,
and where a request's time goes (a cProfile table of the token path and of ``/healthz``)."""

from __future__ import annotations

import base64
import json
import os
import pstats
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519
from options import BENCH, DURATION, ROUNDS, SMOKE, log
from processes import (
    SERVER_CORE,
    Process,
    Wrk,
    children_cpu_seconds,
    cpu_seconds,
    pinned,
    process_tree,
    processes_named,
    run_cli,
    service,
)
from seeding import BULK_SECRET, bulk_insert, create_admin, db_env, seed_flow
from stages import check_token, median, token_request_args

from keyrelease.testing.processes import Server, free_port
from keyrelease.testing.tokens import basic_auth

PEER = BENCH / "peer"
PEER_CLIENT = "bench-peer-client"
#: The access log as production writes it: every request, one JSON object per line.
PRODUCTION_LOG = {"KEYRELEASE_LOG_FORMAT": "json"}
PROFILE_REQUESTS_S = 2.0 if SMOKE else 8.0


def key_file(env: dict[str, str]) -> Path:
    """The signing key ``keyrelease serve`` generated for this run (development key in var/)."""
    return Path(env["KEYRELEASE_VAR_DIR"]) / "jwt_signing_key.pem"


def floor_app(logs: Path, database: Path, env: dict[str, str]) -> Process:
    port = free_port()
    argv = pinned(SERVER_CORE, [sys.executable, str(BENCH / "floor_app.py"), "--port", str(port),
                                "--database", str(database), "--key-file", str(key_file(env))])
    return Process(argv, log_path=logs / "floor.log", port=port)


# -- the peer ----------------------------------------------------------------------------------


def peer_process(env: dict[str, str], logs: Path) -> tuple[Process | None, str]:
    """oidc-provider (bench/peer/server.mjs) on the server core with the service's own Ed25519
    key and one client; or None and the reason it cannot run here."""
    if not shutil.which("node") or not shutil.which("npm"):
        return None, "Node.js (node and npm) not found"
    if not (PEER / "node_modules" / "oidc-provider").is_dir():
        log("[peer] npm ci in bench/peer")
        done = subprocess.run(["npm", "ci", "--no-audit", "--no-fund"], cwd=PEER, capture_output=True, text=True,
                              timeout=600)
        if done.returncode != 0:
            return None, f"npm ci failed: {(done.stdout + done.stderr)[-300:]}"
    key = serialization.load_pem_private_key(key_file(env).read_bytes(), password=None)
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        return None, "the service's signing key is not Ed25519"

    def b64(data: bytes) -> str:
        return base64.urlsafe_b64encode(data).rstrip(b"=").decode()

    raw = serialization.Encoding.Raw
    jwk = {"kty": "OKP", "crv": "Ed25519", "kid": "bench",
           "d": b64(key.private_bytes(raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())),
           "x": b64(key.public_key().public_bytes(raw, serialization.PublicFormat.Raw))}
    port = free_port()
    peer_env = {"PEER_PORT": str(port), "PEER_CLIENT_ID": PEER_CLIENT, "PEER_CLIENT_SECRET": BULK_SECRET,
                "PEER_JWK": json.dumps(jwk), "NODE_ENV": "production"}
    argv = pinned(SERVER_CORE, ["node", str(PEER / "server.mjs")])
    return Process(argv, peer_env, log_path=logs / "peer.log", port=port,
                   health="/.well-known/openid-configuration"), ""


# -- floor, peer, access log, /healthz -----------------------------------------------------


def floor_stage(env: dict[str, str], database: Path, ctx: dict[str, Any], bare: Process, wrk: Wrk,
                logs: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """In alternating rounds: the bare endpoint, the token floor, the token endpoint with the
    access log on in production format (JSON) and off, ``/healthz`` with and without it, and
    the peer. Returns (token_floor, peer)."""
    auths = [basic_auth(cid, BULK_SECRET) for cid in ctx["bulk_ids"]]
    floor = floor_app(logs, database, env).start()
    logged = service({**env, **PRODUCTION_LOG}, logs, "service-access-log", "--log-level", "info").start()
    quiet = service(env, logs, "service-quiet").start()
    peer, reason = peer_process(env, logs)
    try:
        if peer is not None:
            try:
                peer.start(timeout=60)
            except (RuntimeError, TimeoutError) as err:
                peer, reason = None, f"did not start: {str(err)[-300:]}"
        if peer is None:
            log(f"[peer] skipped: {reason}")
        for server in (floor, logged, quiet):
            check_token(server.url, auths[0])
        runs: dict[str, tuple[str, dict[str, Any]]] = {
            "bare": (bare.url + "/", {}),
            "floor": (floor.url + "/ids/auth/login", token_request_args(auths)),
            "token_logged": (logged.url + "/ids/auth/login", token_request_args(auths)),
            "token_quiet": (quiet.url + "/ids/auth/login", token_request_args(auths)),
            "healthz_logged": (logged.url + "/healthz", {}),
            "healthz_quiet": (quiet.url + "/healthz", {}),
        }
        if peer is not None:
            runs["peer"] = (peer.url + "/ids/auth/login", token_request_args([basic_auth(PEER_CLIENT, BULK_SECRET)]))
        for url, args in runs.values():  # warm-up
            wrk.run(url, duration=1, **args)
        rps: dict[str, list[float]] = {name: [] for name in runs}
        status_errors = 0
        for n in range(ROUNDS):
            log(f"[floor] round {n + 1}/{ROUNDS}: {', '.join(runs)} for {DURATION:g} s each")
            for name, (url, args) in runs.items():
                result = wrk.run(url, duration=DURATION, **args)
                rps[name].append(result["rps"])
                status_errors += result["errors_status"]
    finally:
        for process in (floor, logged, quiet, peer):
            if process is not None:
                process.stop()

    def ratio(a: str, b: str) -> float:
        return median([x / y for x, y in zip(rps[a], rps[b], strict=True) if y])

    token_floor = {
        "floor_rps": median(rps["floor"]), "token_rps": median(rps["token_logged"]),
        "token_quiet_rps": median(rps["token_quiet"]), "ratio": ratio("token_logged", "floor"),
        "quiet_ratio": ratio("token_quiet", "floor"), "floor_vs_bare": ratio("floor", "bare"),
        "access_log_cost_pct": 100 * (1 - ratio("token_logged", "token_quiet")),
        "healthz_rps": median(rps["healthz_logged"]), "healthz_ratio": ratio("healthz_logged", "bare"),
        "healthz_quiet_rps": median(rps["healthz_quiet"]), "healthz_quiet_ratio": ratio("healthz_quiet", "bare"),
        "bare_rps": median(rps["bare"]), "status_errors": status_errors,
        "access_log": "on, KEYRELEASE_LOG_FORMAT=json, --log-level info (every request one line)",
        "rounds": rps,
    }
    peer_result: dict[str, Any] = {"skipped": reason} if "peer" not in rps else {
        "rps": median(rps["peer"]), "ratio": ratio("token_logged", "peer"), "quiet_ratio": ratio("token_quiet", "peer"),
        "server": "oidc-provider 9 (bench/peer), client_credentials, EdDSA JWT, one client in memory",
    }
    return token_floor, peer_result


# -- workers -------------------------------------------------------------------------------


def workers_stage(pg_url: str, tmp: Path, wrk: Wrk, logs: Path) -> dict[str, Any]:
    """``keyrelease serve --workers 1`` against ``--workers 2`` on PostgreSQL, neither pinned
    (the two workers have the machine's two cores; wrk shares core 1), alternating rounds.

    Besides the rates, each run's CPU time is counted where it went: the server processes,
    PostgreSQL (every ``postgres`` process) and wrk. On a machine whose cores all go to the
    server, the database and the load generator, a second process cannot add a core; what it
    can show is that the work per request does not grow with the number of processes (no
    contention between them), which is what lets the rate grow where there are cores to spare."""
    from keyrelease.testing.postgres import scratch_postgres

    with scratch_postgres(pg_url, f"keyrelease_bench_workers_{os.getpid()}") as database_url:
        env = db_env(tmp / "workers", database_url)
        run_cli(env, "migrate")
        admin_token = create_admin(env)
        one = Server(env, log_path=logs / "workers-1.log").start()
        try:
            key_id, _, _ = seed_flow(one.url, admin_token)
            auths = [basic_auth(cid, BULK_SECRET) for cid in bulk_insert(database_url, key_id, 1000 if not SMOKE else 100)]
            two = Server(env, log_path=logs / "workers-2.log", options=("--workers", "2")).start()
            try:
                for server in (one, two):
                    check_token(server.url, auths[0])
                    wrk.run(server.url + "/ids/auth/login", duration=1, **token_request_args(auths))
                runs: dict[str, list[dict[str, float]]] = {"one": [], "two": []}
                for n in range(ROUNDS):
                    log(f"[workers] round {n + 1}/{ROUNDS}: token endpoint, 1 worker then 2 (PostgreSQL)")
                    for name, server in (("one", one), ("two", two)):
                        runs[name].append(_accounted_run(wrk, server, auths))
            finally:
                two.stop()
        finally:
            one.stop()
    ones, twos = [r["rps"] for r in runs["one"]], [r["rps"] for r in runs["two"]]

    def per_request(name: str) -> dict[str, float]:
        return {part: median([r[part] for r in runs[name]])
                for part in ("server_us", "postgres_us", "wrk_us", "cores_busy")}

    return {"one_rps": median(ones), "two_rps": median(twos),
            "scaling": median([b / a for a, b in zip(ones, twos, strict=True) if a]),
            "cpu_per_request": {"one": per_request("one"), "two": per_request("two")},
            "rounds": {"one": ones, "two": twos, "detail": runs}, "database": "PostgreSQL (scratch database)",
            "cores": os.cpu_count(),
            "note": "servers unpinned; wrk pinned to core 1; CPU time counted per run for the server "
                    "processes, every postgres process and wrk"}


def _accounted_run(wrk: Wrk, server: Server, auths: list[str]) -> dict[str, float]:
    """One wrk run against ``server``, with the CPU time it cost each party, per request."""
    servers, postgres = process_tree(server.pid), processes_named("postgres")
    before = (cpu_seconds(servers), cpu_seconds(postgres), children_cpu_seconds(), time.monotonic())
    result = wrk.run(server.url + "/ids/auth/login", duration=DURATION, **token_request_args(auths))
    postgres = sorted(set(postgres) | set(processes_named("postgres")))  # backends opened meanwhile count from 0
    after = (cpu_seconds(servers), cpu_seconds(postgres), children_cpu_seconds(), time.monotonic())
    requests = max(result["requests"], 1)
    spent = [(b - a) * 1e6 / requests for a, b in zip(before[:3], after[:3], strict=True)]
    return {"rps": result["rps"], "server_us": spent[0], "postgres_us": spent[1], "wrk_us": spent[2],
            "cores_busy": sum(b - a for a, b in zip(before[:3], after[:3], strict=True)) / (after[3] - before[3])}


# -- profile -------------------------------------------------------------------------------


def profile_stage(env: dict[str, str], ctx: dict[str, Any], wrk: Wrk, out_dir: Path, logs: Path) -> dict[str, Any]:
    """cProfile (bench/profiled.py, CPU time) of the service under wrk: the token path, then
    ``/healthz``, with the access log on in production format. A table of each in the results."""
    auths = [basic_auth(cid, BULK_SECRET) for cid in ctx["bulk_ids"]]
    results: dict[str, Any] = {"tool": "cProfile (thread CPU time), bench/profiled.py",
                               "why_not_py_spy": "py-spy 0.4.1 installs from PyPI but cannot read this "
                                                 "machine's interpreter ('Failed to find python version')"}
    for name, path, args in (("token", "/ids/auth/login", token_request_args(auths)), ("healthz", "/healthz", {})):
        stats_file = out_dir / f"profile-{name}.prof"
        port = free_port()
        argv = pinned(SERVER_CORE, [sys.executable, str(BENCH / "profiled.py"), "keyrelease", "serve", "--port",
                                    str(port), "--log-level", "info"])
        server = Process(argv, {**env, **PRODUCTION_LOG, "PROFILE_OUT": str(stats_file)},
                         log_path=logs / f"profile-{name}.log", port=port).start()
        try:
            url = server.url + path
            wrk.run(url, duration=1, **args)
            os.kill(server.pid, signal.SIGUSR1)
            run = wrk.run(url, duration=PROFILE_REQUESTS_S, **args)
            os.kill(server.pid, signal.SIGUSR2)
            deadline = time.monotonic() + 30
            while not stats_file.exists() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            server.stop()
        results[name] = {"requests": run["requests"], "top": profile_table(stats_file, run["requests"])}
    return results


def profile_table(stats_file: Path, requests: int, rows: int = 25) -> list[dict[str, Any]]:
    """The functions with the most own CPU time: calls and µs per request, share of the total."""
    stats = pstats.Stats(str(stats_file))
    entries = stats.stats  # type: ignore[attr-defined]
    total = sum(tt for _, _, tt, _, _ in entries.values()) or 1.0
    top = sorted(entries.items(), key=lambda item: item[1][2], reverse=True)[:rows]
    table = []
    for (filename, line, function), (_, calls, tottime, cumtime, _) in top:
        where = filename.split("site-packages/")[-1].split("/src/")[-1].split("/lib/python3")[-1]
        table.append({"function": f"{where}:{line}({function})", "calls_per_request": calls / max(requests, 1),
                      "own_us_per_request": 1e6 * tottime / max(requests, 1), "share_pct": 100 * tottime / total,
                      "cum_us_per_request": 1e6 * cumtime / max(requests, 1)})
    return table

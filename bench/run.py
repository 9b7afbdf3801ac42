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
  KEYRELEASE_TEST_POSTGRES_URL  also run the token/key/flow stages on a fresh PostgreSQL database,
                       and the workers stage (one process against two)
  BENCH_WORKERS_POSTGRES_URL    the workers stage only on this PostgreSQL server (the smoke test
                       sets it: it keeps the other stages on SQLite)

The issue-19 stages (bench/floor_stages.py): the token floor (bench/floor_app.py) and the
oidc-provider peer (bench/peer, skipped with a printed reason without Node.js), the access log's
cost and /healthz against bare, one worker against two, and a cProfile table of the token path
and of /healthz. Instructions per request (callgrind) are bench/instructions.py, run apart.
"""

from __future__ import annotations

import os
import platform
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from floor_stages import floor_stage, profile_stage, workers_stage
from options import BENCH, CONNECTIONS, DURATION, LARGE_KEYS, RATE_LIMITS_ON, ROUNDS, SMOKE, log
from processes import Wrk, bare_app, loadavg, pin_harness, pinning, require_wrk, wrk_version
from report import TARGETS, evaluate, write
from seeding import db_env
from stages import core_stages, outbox_stage, postgres_stages, reference_stage, scale_stage

__all__ = ["RESULT_KEYS", "TARGETS", "main"]

#: Every figure the harness reports; the smoke test checks each is present.
RESULT_KEYS = (
    "meta", "bare_rps", "token_rps", "token_ratio", "key_query_rps", "key_query_ratio", "strawberry_floor",
    "pure_python_stack", "token_latency_at_half", "flow", "scale", "outbox", "rss", "postgres", "targets",
    "token_floor", "peer", "workers", "profile",
)


def main() -> int:
    require_wrk()
    pin_harness()
    timestamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_root = Path(os.environ.get("BENCH_OUT_DIR") or BENCH / "results")
    out_dir = out_root / timestamp
    out_dir.mkdir(parents=True, exist_ok=True)
    logs = out_dir / "logs"
    logs.mkdir()
    import starlette
    import uvicorn

    meta = {
        "timestamp": timestamp, "smoke": SMOKE, "duration_s": DURATION, "rounds": ROUNDS,
        "cpus": os.cpu_count(), "loadavg_before": loadavg(), "python": platform.python_version(),
        "uvicorn": uvicorn.__version__, "starlette": starlette.__version__, "wrk": wrk_version(),
        "pinning": pinning(),
        "load_tool": f"wrk -t1 -c{CONNECTIONS} (closed loop)", "large_keys": LARGE_KEYS,
        "rate_limits": "on, set to 1e9/minute" if RATE_LIMITS_ON else "off",
        "uvicorn_loop_http": _uvicorn_impl(),
    }
    log(f"results -> {out_dir}{' (SMOKE)' if SMOKE else ''}")
    results: dict[str, Any] = {"meta": meta}
    with tempfile.TemporaryDirectory(prefix="keyrelease-bench-") as tmp_name:
        tmp = Path(tmp_name)
        wrk = Wrk(tmp)
        bare = bare_app(logs, "bare").start()
        floor = bare_app(logs, "strawberry", "--strawberry").start()
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
            results["token_floor"], results["peer"] = floor_stage(env, main_db, ctx, bare, wrk, logs)
            results["profile"] = profile_stage(env, ctx, wrk, out_dir, logs)
            results["pure_python_stack"] = reference_stage(env, ctx, wrk, logs)
            results["scale"] = scale_stage(tmp, main_db, ctx["key_id"], ctx["bulk_ids"], wrk, logs)
            results["outbox"] = outbox_stage(tmp, main_db, ctx["admin_token"], logs)
            pg_url = os.environ.get("KEYRELEASE_TEST_POSTGRES_URL", "").strip()
            results["postgres"] = postgres_stages(pg_url, tmp, bare, wrk, logs) if pg_url else None
            workers_url = os.environ.get("BENCH_WORKERS_POSTGRES_URL", "").strip() or pg_url
            results["workers"] = (workers_stage(workers_url, tmp, wrk, logs) if workers_url
                                  else {"skipped": "no PostgreSQL (set KEYRELEASE_TEST_POSTGRES_URL)"})
            if "skipped" in results["workers"]:
                log(f"[workers] skipped: {results['workers']['skipped']}")
        finally:
            bare.stop()
            floor.stop()
    meta["loadavg_after"] = loadavg()
    results["targets"] = evaluate(results)
    missing = [k for k in RESULT_KEYS if k not in results]
    assert not missing, missing

    latest = out_root / "latest"
    table = write(results, out_dir, latest)
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

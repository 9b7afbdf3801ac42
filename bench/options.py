"""What a benchmark run measures and for how long: the ``BENCH_*`` variables (bench/run.py's
docstring lists them), the fixed sizes, and where the harness and its results live."""

from __future__ import annotations

import os
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua" / "load.lua"

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


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", flush=True)

"""The benchmark harness still runs (``BENCH_SMOKE=1``: every stage for about a second).
It never asserts a speed: only that each stage ran and the results carry every figure."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from environment import needs_executable

ROOT = Path(__file__).resolve().parent.parent

pytestmark = [
    pytest.mark.live,
    needs_executable("wrk", "apt-get install wrk"),
]


def test_bench_smoke_runs_every_stage(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    try:
        import run as bench  # bench/run.py
    finally:
        sys.path.remove(str(ROOT / "bench"))
    env = {**os.environ, "BENCH_SMOKE": "1", "BENCH_OUT_DIR": str(tmp_path)}
    postgres = env.pop("KEYRELEASE_TEST_POSTGRES_URL", "")  # the smoke stays on SQLite and short,
    if postgres:
        env["BENCH_WORKERS_POSTGRES_URL"] = postgres  # but for the workers stage, which needs PostgreSQL
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py")], env=env, capture_output=True, text=True, timeout=480
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    results = json.loads((tmp_path / "latest" / "results.json").read_text())
    assert set(bench.RESULT_KEYS) <= set(results)
    assert results["meta"]["smoke"] is True
    for figure in ("bare_rps", "token_rps", "token_ratio", "key_query_rps", "key_query_ratio"):
        assert isinstance(results[figure], float), figure
    assert results["rounds"]["token_status_errors"] == 0  # every token request got its token
    assert results["rounds"]["key_status_errors"] == 0
    for figure, field in (("token_latency_at_half", "p99_ms"), ("flow", "p50_ms"), ("scale", "ratio"),
                          ("outbox", "per_s"), ("rss", "growth_pct")):
        assert results[figure][field] is not None, figure
    assert results["flow"]["errors"] == 0
    assert results["outbox"]["sent"] == results["outbox"]["messages"] > 0
    assert set(results["targets"]) == {key for key, *_ in bench.TARGETS}
    floor = results["token_floor"]  # the floor, the token endpoint with and without the access log, /healthz
    for figure in ("floor_rps", "token_rps", "token_quiet_rps", "ratio", "access_log_cost_pct", "healthz_ratio"):
        assert isinstance(floor[figure], float), figure
    assert floor["status_errors"] == 0
    if shutil.which("node"):  # the peer runs wherever Node.js does, else says why not
        assert results["peer"]["rps"] > 0, results["peer"]
    else:
        assert results["peer"]["skipped"]
    assert (results["workers"]["two_rps"] > 0) if postgres else results["workers"]["skipped"]
    if postgres:  # where each token request's CPU time went, for one worker and for two
        for name in ("one", "two"):
            spent = results["workers"]["cpu_per_request"][name]
            assert spent["server_us"] > 0 and spent["postgres_us"] > 0 and spent["wrk_us"] > 0, spent
    for path in ("token", "healthz"):
        assert results["profile"][path]["top"], path
    assert "Profile of `token`" in (tmp_path / "latest" / "results.md").read_text()
    assert (tmp_path / "latest" / "results.md").read_text().startswith("Run ")

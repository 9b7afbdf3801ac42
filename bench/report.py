"""What a run reports: each figure against its target, the tables of results.md, the chart."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from options import log

TARGETS = (
    ("token_ratio", "token RPS / bare RPS", ">=", 0.5),
    ("token_p99_at_half_ms", "token p99 at 50% of max rate (ms)", "<=", 5.0),
    ("key_query_ratio", "key(id) RPS / bare RPS", ">=", 0.25),
    ("flow_p50_ms", "create->verify->reveal flow p50 (ms)", "<", 15.0),
    ("scale_ratio", "token p50, many keys / 1k keys", "<=", 1.2),
    ("rss_growth_pct", "RSS growth over the token requests (%)", "<", 10.0),
    ("token_floor_ratio", "token RPS (JSON access log on) / token floor RPS", ">=", 0.75),
    ("healthz_ratio", "/healthz RPS (JSON access log on) / bare RPS", ">=", 0.8),
    ("access_log_cost_pct", "access log's cost (% of the token rate)", "<=", 10.0),
    ("peer_ratio", "token RPS (JSON access log on) / oidc-provider RPS", ">=", 2.0),
    ("key_query_floor_ratio", "key(id) RPS / Strawberry floor RPS", ">=", 0.6),
)


def evaluate(results: dict[str, Any]) -> dict[str, Any]:
    values = {
        "token_ratio": results["token_ratio"],
        "token_p99_at_half_ms": results["token_latency_at_half"]["p99_ms"],
        "key_query_ratio": results["key_query_ratio"],
        "flow_p50_ms": results["flow"]["p50_ms"],
        "scale_ratio": results["scale"]["ratio"],
        "rss_growth_pct": results["rss"]["growth_pct"],
        "token_floor_ratio": results["token_floor"]["ratio"],
        "healthz_ratio": results["token_floor"]["healthz_ratio"],
        "access_log_cost_pct": results["token_floor"]["access_log_cost_pct"],
        "peer_ratio": results["peer"].get("ratio"),
        "key_query_floor_ratio": results["strawberry_floor"]["key_query_share"],
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
    tf, peer, workers = results["token_floor"], results["peer"], results["workers"]
    rows += [
        ("token floor (bench/floor_app.py)", f"{fmt(tf['floor_rps'], 0)} req/s", f"{fmt(tf['floor_vs_bare'])} × bare"),
        ("token endpoint, JSON access log on", f"{fmt(tf['token_rps'], 0)} req/s", f"**{fmt(tf['ratio'])} × floor**"),
        ("token endpoint, access log off", f"{fmt(tf['token_quiet_rps'], 0)} req/s",
         f"{fmt(tf['quiet_ratio'])} × floor; the access log costs **{fmt(tf['access_log_cost_pct'], 1)}%**"),
        ("`/healthz`, JSON access log on", f"{fmt(tf['healthz_rps'], 0)} req/s", f"**{fmt(tf['healthz_ratio'])} × bare**"),
        ("`/healthz`, access log off", f"{fmt(tf['healthz_quiet_rps'], 0)} req/s", f"{fmt(tf['healthz_quiet_ratio'])} × bare"),
        ("oidc-provider (the peer)", f"{fmt(peer['rps'], 0)} req/s" if "rps" in peer else f"skipped: {peer['skipped']}",
         f"keyrelease (log on) **{fmt(peer['ratio'])} ×** the peer; log off {fmt(peer['quiet_ratio'])} ×"
         if "rps" in peer else ""),
        ("`serve --workers 1` vs `2` (PostgreSQL)",
         f"{fmt(workers['one_rps'], 0)} vs {fmt(workers['two_rps'], 0)} req/s" if "one_rps" in workers
         else f"skipped: {workers['skipped']}",
         f"**{fmt(workers['scaling'])} ×** with two processes" if "one_rps" in workers else ""),
    ]
    if "cpu_per_request" in workers:
        for name, label in (("one", "1 worker"), ("two", "2 workers")):
            c = workers["cpu_per_request"][name]
            rows.append((f"CPU per token request, {label} (PostgreSQL)",
                         f"server {fmt(c['server_us'], 0)} µs, PostgreSQL {fmt(c['postgres_us'], 0)} µs, "
                         f"wrk {fmt(c['wrk_us'], 0)} µs",
                         f"{fmt(c['cores_busy'])} of {workers['cores']} cores busy"))
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
    for name in ("token", "healthz"):
        profile = results["profile"][name]
        lines += ["", f"Profile of `{name}` under load ({results['profile']['tool']}; {profile['requests']:,} requests):",
                  "", "| function | calls / request | own µs / request | share |", "|---|---|---|---|",
                  *[f"| `{row['function']}` | {fmt(row['calls_per_request'], 1)} | {fmt(row['own_us_per_request'], 1)} "
                    f"| {fmt(row['share_pct'], 1)}% |" for row in profile["top"][:15]]]
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


def write(results: dict[str, Any], out_dir: Path, latest: Path) -> str:
    """results.json, results.md and chart.png in ``out_dir``, copied without the logs to
    ``latest``; the markdown tables."""
    (out_dir / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    table = markdown(results)
    (out_dir / "results.md").write_text(table)
    chart(results, out_dir / "chart.png")
    if latest.is_symlink() or latest.is_file():
        latest.unlink()
    elif latest.is_dir():
        shutil.rmtree(latest)
    shutil.copytree(out_dir, latest, ignore=shutil.ignore_patterns("logs"))
    return table

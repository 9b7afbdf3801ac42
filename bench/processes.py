"""The processes a benchmark run starts, and wrk, the load generator.

The servers (``keyrelease serve``, bench/bare_app.py) are pinned to core 0, wrk and the harness
to core 1, when ``taskset`` and two CPUs are there. Starting, waiting for and stopping a process
is :mod:`keyrelease.testing.processes`, the same code the live tests use.
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
from options import BENCH, CONNECTIONS, LUA, log

from keyrelease.testing import processes
from keyrelease.testing.processes import KEYRELEASE, Process, Server, free_port

HAVE_TASKSET = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
SERVER_CORE, LOAD_CORE = "0", "1"


def pinned(core: str, argv: list[str]) -> list[str]:
    return ["taskset", "-c", core, *argv] if HAVE_TASKSET else argv


def pin_harness() -> None:
    """This process (and what it starts unpinned) on the load core."""
    if HAVE_TASKSET:
        os.sched_setaffinity(0, {int(LOAD_CORE)})


def pinning() -> str:
    return f"server core {SERVER_CORE}, load core {LOAD_CORE}" if HAVE_TASKSET else "none (no taskset or 1 CPU)"


def service(env: dict[str, str], logs: Path, name: str, *options: str) -> Server:
    """``keyrelease serve`` on the server core, logging to ``logs/<name>.log``; not started."""
    return Server(env, log_path=logs / f"{name}.log", prefix=pinned(SERVER_CORE, []), options=options)


def bare_app(logs: Path, name: str, *options: str) -> Process:
    """bench/bare_app.py (``options`` go to it) on the server core; not started."""
    port = free_port()
    argv = pinned(SERVER_CORE, [sys.executable, str(BENCH / "bare_app.py"), "--port", str(port), *options])
    return Process(argv, log_path=logs / f"{name}.log", port=port)


def worker(env: dict[str, str], logs: Path) -> Process:
    """``keyrelease worker`` on the server core; not started."""
    return Process(pinned(SERVER_CORE, [KEYRELEASE, "worker"]), env, log_path=logs / "worker.log")


def smtp_sink(logs: Path) -> tuple[Process, int]:
    """An SMTP server that accepts and discards every message (aiosmtpd's Sink) on the load
    core, started and accepting connections; and its port."""
    port = free_port()
    sink = Process(pinned(LOAD_CORE, [sys.executable, "-m", "aiosmtpd", "-n", "-c", "aiosmtpd.handlers.Sink",
                                      "-l", f"127.0.0.1:{port}"]), log_path=logs / "smtp.log")
    sink.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.05)
    return sink, port


def run_cli(env: dict[str, str], *args: str) -> str:
    """``keyrelease <args>``; its standard output, or RuntimeError with everything it wrote."""
    done = processes.run_cli(env, *args, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"keyrelease {' '.join(args)} failed: {done.stdout}{done.stderr}")
    return done.stdout


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


_TICK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of these processes so far (0 for one that is gone)."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of stat)
    return total / _TICK


def process_tree(pid: int) -> list[int]:
    """``pid`` and its descendants (``keyrelease serve --workers N``: the parent and N workers)."""
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        for task in Path(f"/proc/{current}/task").glob("*/children"):
            todo += [int(child) for child in task.read_text().split()]
    return tree


def processes_named(name: str) -> list[int]:
    """Every process whose command name is ``name`` (e.g. ``postgres``: the server and its backends)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/comm"):
        try:
            if stat.read_text().strip() == name:
                found.append(int(stat.parent.name))
        except OSError:
            continue
    return found


def children_cpu_seconds() -> float:
    """User + system CPU time of this process's finished children (wrk)."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def loadavg() -> list[float]:
    try:
        return [float(x) for x in Path("/proc/loadavg").read_text().split()[:3]]
    except OSError:
        return []


# -- load --------------------------------------------------------------------------------


class Wrk:
    """wrk with bench/lua/load.lua, on the load core; each run's figures as a dict."""

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


def wrk_version() -> str:
    first = subprocess.run(["wrk", "-v"], capture_output=True, text=True).stdout.splitlines()[:1]
    return (first or ["?"])[0]

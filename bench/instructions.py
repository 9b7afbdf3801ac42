"""Instructions per request, counted by callgrind: the load-independent measure of what a
request costs (``make bench-instructions``, or ``python bench/instructions.py [TARGET ...]``).

Wall-clock rates on a shared machine move with the neighbours; the number of instructions a
server executes for one request does not (to a fraction of a percent). Each target is a real
server process (``keyrelease serve``, bench/floor_app.py, bench/bare_app.py) started under
``valgrind --tool=callgrind --instr-atstart=no``; one keep-alive connection sends warm-up
requests with counting off, then ``callgrind_control -i on``, ``BENCH_INSTR_REQUESTS``
requests one at a time (the token requests cycling through the seeded clients), ``-i off``.
The figure is the server's instructions (user space: the kernel's share of socket I/O is not
counted, and is the same for every target) divided by the number of requests.

Targets (default: all):

==================  ==========================================================================
bare                bench/bare_app.py, ``GET /``
floor               bench/floor_app.py, the token floor (``POST /ids/auth/login``)
token               ``keyrelease serve --log-level warning`` (no access log), the token endpoint
token-log           ``keyrelease serve`` with the access log on (``--log-level info``), text format
token-log-json      the same with ``KEYRELEASE_LOG_FORMAT=json`` (the production format)
healthz             ``keyrelease serve --log-level warning``, ``GET /healthz``
healthz-log-json    ``GET /healthz`` with the access log on, JSON
strawberry-floor    ``bench/bare_app.py --strawberry``, the Strawberry floor (``POST /graphql``, ``{ hello }``)
key-query           ``keyrelease serve --log-level warning``, the ``key(id)`` query with an admin token
                    (bench/seeding.py ``KEY_QUERY``, as bench/stages.py sends it)
==================  ==========================================================================

Writes ``instructions.json`` (and each target's callgrind file) to ``BENCH_OUT_DIR``
(default bench/results/instructions/); prints a table.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from options import BENCH, log  # noqa: E402
from processes import run_cli  # noqa: E402
from seeding import BULK_SECRET, KEY_QUERY, bulk_insert, create_admin, db_env, seed_flow  # noqa: E402

from keyrelease.testing.processes import KEYRELEASE, Server, free_port  # noqa: E402

REQUESTS = int(os.environ.get("BENCH_INSTR_REQUESTS") or 400)
WARMUP = int(os.environ.get("BENCH_INSTR_WARMUP") or 300)
CLIENTS = 200
PYTHON = str(Path(sys.executable))  # the virtualenv's interpreter (a symlink valgrind can run)


@dataclass
class Target:
    name: str
    argv: list[str]
    method: str
    path: str
    env: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    token: bool = False
    content_type: str = "application/x-www-form-urlencoded"
    #: One Authorization header for every request (the token requests cycle through clients).
    authorization: str | None = None
    #: Bytes every answer's body must hold (a GraphQL error still answers 200).
    expect: bytes = b""


#: Background work on a timer is not a request's cost, and under valgrind (~50 times slower)
#: timers fire fifty times as often per request: the mail loops off, the last-use flush at its
#: longest interval (its cost per key and interval is in docs/performance.md).
QUIET = {"KEYRELEASE_DISPATCHER": "false", "KEYRELEASE_LAST_USED_FLUSH_SECONDS": "3600"}


@dataclass
class Seeded:
    env: dict[str, str]
    database: Path
    key_file: Path
    client_ids: list[str]
    key_id: str
    admin_token: str


def targets(seeded: Seeded) -> dict[str, Target]:
    env, database, key_file = seeded.env, seeded.database, seeded.key_file
    serve = [PYTHON, KEYRELEASE, "serve"]
    env = {**env, **QUIET}
    json_env = {**env, "KEYRELEASE_LOG_FORMAT": "json"}
    grant = b"grant_type=client_credentials"
    floor = [PYTHON, str(BENCH / "floor_app.py"), "--database", str(database), "--key-file", str(key_file)]
    made = [
        Target("bare", [PYTHON, str(BENCH / "bare_app.py")], "GET", "/"),
        Target("floor", floor, "POST", "/ids/auth/login", body=grant, token=True),
        Target("token", [*serve, "--log-level", "warning"], "POST", "/ids/auth/login", env, grant, True),
        Target("token-log", [*serve, "--log-level", "info"], "POST", "/ids/auth/login", env, grant, True),
        Target("token-log-json", [*serve, "--log-level", "info"], "POST", "/ids/auth/login", json_env, grant, True),
        Target("healthz", [*serve, "--log-level", "warning"], "GET", "/healthz", env),
        Target("healthz-log-json", [*serve, "--log-level", "info"], "GET", "/healthz", json_env),
        Target("strawberry-floor", [PYTHON, str(BENCH / "bare_app.py"), "--strawberry"], "POST", "/graphql",
               body=b'{"query":"{ hello }"}', content_type="application/json"),
        Target("key-query", [*serve, "--log-level", "warning"], "POST", "/graphql", env,
               json.dumps({"query": KEY_QUERY, "variables": {"id": seeded.key_id}}).encode(),
               content_type="application/json", authorization=f"Bearer {seeded.admin_token}",
               expect=b'{"data":{"key":{"id":'),
    ]
    return {t.name: t for t in made}


def requests_for(target: Target, client_ids: list[str]) -> list[bytes]:
    auths = [target.authorization]
    if target.token:
        auths = ["Basic " + base64.b64encode(f"{c}:{BULK_SECRET}".encode()).decode() for c in client_ids]
    made = []
    for auth in auths:
        lines = [f"{target.method} {target.path} HTTP/1.1", "Host: 127.0.0.1", "User-Agent: bench"]
        if auth:
            lines.append(f"Authorization: {auth}")
        if target.body:
            lines += [f"Content-Type: {target.content_type}", f"Content-Length: {len(target.body)}"]
        made.append(("\r\n".join(lines) + "\r\n\r\n").encode() + target.body)
    return made


class Connection:
    """One keep-alive HTTP/1.1 connection; each request waits for its whole response."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buffer = b""
        self.body = b""

    def send(self, request: bytes) -> int:
        self.sock.sendall(request)
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(self.buffer) < length:
            self._read()
        self.body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(head.split(b" ", 2)[1])

    def _read(self) -> None:
        chunk = self.sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk

    def close(self) -> None:
        self.sock.close()


def wait_listening(port: int, process: subprocess.Popen[bytes], timeout: float = 600) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise TimeoutError("not listening")


def callgrind(pid: int, *args: str) -> None:
    done = subprocess.run(["callgrind_control", *args, str(pid)], capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or "OK" not in done.stdout:
        raise RuntimeError(f"callgrind_control {' '.join(args)}: {done.stdout}{done.stderr}")


def measure(target: Target, client_ids: list[str], out_dir: Path, requests: int = REQUESTS,
            warmup: int = WARMUP) -> dict[str, Any]:
    port = free_port()
    out_file = out_dir / f"callgrind.{target.name}.out"
    for old in out_dir.glob(out_file.name + "*"):
        old.unlink()
    argv = ["valgrind", "--tool=callgrind", "--instr-atstart=no", f"--callgrind-out-file={out_file}",
            *target.argv, "--port", str(port)]
    log_path = out_dir / f"{target.name}.log"
    with open(log_path, "wb") as server_log:
        process = subprocess.Popen(argv, env={**os.environ, **target.env, "PYTHONHASHSEED": "0"},
                                   stdout=server_log, stderr=subprocess.STDOUT)
    try:
        wait_listening(port, process)
        batch = requests_for(target, client_ids)
        connection = Connection(port)
        statuses: dict[int, int] = {}
        for n in range(warmup):
            status = connection.send(batch[n % len(batch)])
            statuses[status] = statuses.get(status, 0) + 1
        if set(statuses) != {200}:
            raise RuntimeError(f"{target.name}: warm-up answers {statuses}; see {log_path}")
        _check_body(target, connection)
        callgrind(process.pid, "-i", "on")
        for n in range(requests):
            connection.send(batch[(warmup + n) % len(batch)])
        callgrind(process.pid, "-i", "off")
        _check_body(target, connection)
        callgrind(process.pid, "--dump")  # the counts so far, written now: no need to wait for a shutdown
        connection.close()
    finally:
        process.kill()
        process.wait(30)
    total = _total(out_dir, out_file.name)
    return {"requests": requests, "instructions": total, "per_request": total / requests}


def _check_body(target: Target, connection: Connection) -> None:
    if target.expect not in connection.body:
        raise RuntimeError(f"{target.name}: the answer {connection.body[:300]!r} lacks {target.expect!r}")


def _total(out_dir: Path, name: str) -> int:
    """The instructions counted: the one dump (``NAME.1``, …) with a non-zero total."""
    for out_file in sorted(out_dir.glob(name + "*")):
        for line in out_file.read_text(errors="replace").splitlines():
            if line.startswith(("totals:", "summary:")) and int(line.split()[1]):
                return int(line.split()[1])
    raise RuntimeError(f"no counts in {out_dir}/{name}*")


def seed(tmp: Path) -> Seeded:
    """A database with one key made through the API and CLIENTS bulk keys: the service's
    environment, the database file, the signing key file, the bulk client IDs, the key's id
    and the admin's token."""
    database = tmp / "keyrelease.sqlite3"
    env = db_env(tmp, f"sqlite://{database}")
    admin_token = create_admin(env)
    server = Server(env, log_path=tmp / "seed.log").start()
    try:
        key_id, _, _ = seed_flow(server.url, admin_token)
    finally:
        server.stop()
    client_ids = bulk_insert(f"sqlite://{database}", key_id, CLIENTS)
    return Seeded(env, database, Path(env["KEYRELEASE_VAR_DIR"]) / "jwt_signing_key.pem", client_ids, key_id, admin_token)


def table(results: dict[str, dict[str, Any]]) -> str:
    lines = ["| target | instructions / request | × floor | × bare |", "|---|---|---|---|"]
    floor = results.get("floor", {}).get("per_request")
    bare = results.get("bare", {}).get("per_request")
    for name, figures in results.items():
        per = figures["per_request"]
        lines.append(f"| {name} | {per:,.0f} | {per / floor:.2f} |" if floor else f"| {name} | {per:,.0f} | – |")
        lines[-1] += f" {per / bare:.2f} |" if bare else " – |"
    if "key-query" in results and "strawberry-floor" in results:
        share = results["strawberry-floor"]["per_request"] / results["key-query"]["per_request"]
        lines.append(f"\nkey(id) against the Strawberry floor (instructions of the floor ÷ key(id)'s): {share:.2f}")
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    if not shutil.which("valgrind") or not shutil.which("callgrind_control"):
        print("bench/instructions.py needs valgrind (apt-get install valgrind)", file=sys.stderr)
        return 1
    out_dir = Path(os.environ.get("BENCH_OUT_DIR") or BENCH / "results" / "instructions")
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="keyrelease-instr-") as tmp_name:
        tmp = Path(tmp_name)
        log("seeding")
        seeded = seed(tmp)
        run_cli(seeded.env, "migrate")
        chosen = targets(seeded)
        names = argv or list(chosen)
        results = {}
        for name in names:
            log(f"{name}: {WARMUP} warm-up requests, then {REQUESTS} counted (callgrind)")
            results[name] = measure(chosen[name], seeded.client_ids, out_dir)
            log(f"{name}: {results[name]['per_request']:,.0f} instructions per request")
    (out_dir / "instructions.json").write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

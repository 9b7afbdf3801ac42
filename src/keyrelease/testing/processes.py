"""Real processes on this machine: ``keyrelease serve`` on a free port, the ``keyrelease`` command,
and any other server the tests or the benchmark start and wait for (``bench/`` runs its bare
Starlette endpoint, ``keyrelease worker`` and an SMTP sink with the same :class:`Process`).

A process writes its output to a file (or nowhere), is ready once its health URL answers 200 (or
at once when it serves no HTTP), and stops with SIGTERM, then SIGKILL if it does not exit.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Self

import httpx

#: The virtualenv's scripts, and the ``keyrelease`` command in it.
BIN = Path(sys.executable).parent
KEYRELEASE = str(BIN / "keyrelease")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_cli(env: Mapping[str, str], *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``keyrelease <args>`` with ``env`` on top of this process's environment, to the end."""
    return subprocess.run(
        [KEYRELEASE, *args], env={**os.environ, **env}, capture_output=True, text=True, timeout=timeout, check=False
    )


class Process:
    """``argv`` as a child process with ``env`` on top of this process's environment, its
    standard output and error appended to ``log_path`` (discarded without one). With a ``port``
    it is an HTTP server, ready once ``health`` answers 200 there."""

    def __init__(
        self,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        *,
        log_path: Path | None = None,
        port: int = 0,
        health: str = "/healthz",
    ) -> None:
        self.argv = list(argv)
        self.env = dict(env or {})
        self.log_path = log_path
        self.port = port
        self.health = health
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    def start(self, *options: str, timeout: float = 30) -> Self:
        """Start it, with ``options`` after ``argv``; with a port, return once it answers, or
        raise with what it wrote."""
        argv = [*self.argv, *options]
        if self.log_path is None:
            self.process = subprocess.Popen(
                argv, env={**os.environ, **self.env}, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT
            )
        else:
            with open(self.log_path, "ab") as log:  # the child has its own descriptor
                self.process = subprocess.Popen(argv, env={**os.environ, **self.env}, stdout=log, stderr=subprocess.STDOUT)
        if not self.port:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.argv[:3]} exited with {self.process.returncode}: {self.output()}")
            try:
                if httpx.get(self.url + self.health, timeout=0.5).status_code == 200:
                    return self
            except httpx.HTTPError:
                time.sleep(0.05)
        raise TimeoutError(f"{self.argv[:3]} did not start: {self.output()}")

    def output(self) -> str:
        """Everything it wrote so far (empty without a log file)."""
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM and wait for it to exit; SIGKILL after ``timeout`` seconds."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)

    def kill(self) -> None:
        """SIGKILL: no shutdown at all, as when the machine dies."""
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(5)


class Server(Process):
    """``keyrelease serve`` on a free port (or ``port``), logging at ``warning``, then ``options``;
    options given to :meth:`start` come last and win (``start("--log-level", "info")``).
    ``prefix`` goes before the command (e.g. ``taskset -c 0``)."""

    def __init__(
        self,
        env: Mapping[str, str],
        *,
        port: int | None = None,
        log_path: Path | None = None,
        prefix: Sequence[str] = (),
        options: Sequence[str] = (),
    ) -> None:
        port = port or free_port()
        argv = [*prefix, KEYRELEASE, "serve", "--port", str(port), "--log-level", "warning", *options]
        super().__init__(argv, env, log_path=log_path, port=port)

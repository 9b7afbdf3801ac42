"""A real OpenID Connect provider for the tests: panva/oidc-provider (OpenID Certified), run
by Node from tests/oidc_provider/ (installed there by ``npm ci`` from its package-lock.json on
first use), on a free port of 127.0.0.1.

Its login page takes any login name that the accounts file knows, with any password; the
accounts file is read at every sign-in, so :meth:`Provider.account` changes a user between two
sign-ins. It signs ID tokens with :data:`SIGNING_KEY`, which the tests also hold, so a test can
hand keyrelease an ID token that is correctly signed but wrong in one claim
(:class:`Tampering`). :func:`sign_in_at_provider` goes through the login page with httpx as
a browser would.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urljoin

import httpx
from joserfc import jwt
from joserfc.jwk import RSAKey

from environment import needs_executable
from keyrelease.testing.processes import free_port

HERE = Path(__file__).resolve().parent / "oidc_provider"
CLIENT_ID = "keyrelease"
CLIENT_SECRET = "test-client-secret-0123456789abcdef"
#: The provider's signing key (RS256), generated once per test run.
SIGNING_KEY = RSAKey.generate_key(2048, parameters={"kid": "test-signing-key", "alg": "RS256", "use": "sig"}, private=True)

needs_node = needs_executable("node", "apt-get install nodejs npm")
_install_lock = threading.Lock()


def install() -> None:
    """``npm ci`` in tests/oidc_provider/, once (again when package-lock.json is newer)."""
    with _install_lock:
        marker = HERE / "node_modules" / ".package-lock.json"
        if marker.exists() and marker.stat().st_mtime >= (HERE / "package-lock.json").stat().st_mtime:
            return
        done = subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=HERE, capture_output=True, text=True, timeout=600
        )
        if done.returncode != 0:
            raise RuntimeError(f"npm ci in {HERE} failed: {done.stderr[-2000:]}")


class Provider:
    """The provider process and its accounts."""

    def __init__(self, workdir: Path, redirect_uris: list[str], *, issuer_host: str = "127.0.0.1") -> None:
        self.port = free_port()
        self.issuer = f"http://{issuer_host}:{self.port}"
        self.accounts_file = workdir / "accounts.json"
        self.accounts: dict[str, dict[str, Any]] = {}
        self._write_accounts()
        config = {
            "port": self.port,
            "issuer": self.issuer,
            "accounts": str(self.accounts_file),
            "clients": [{"client_id": CLIENT_ID, "client_secret": CLIENT_SECRET, "redirect_uris": redirect_uris}],
            "jwks": {"keys": [SIGNING_KEY.as_dict(private=True)]},
        }
        self.config_file = workdir / "provider.json"
        self.config_file.write_text(json.dumps(config))
        self.log = workdir / "provider.log"
        self.process: subprocess.Popen[bytes] | None = None

    def _write_accounts(self) -> None:
        self.accounts_file.write_text(json.dumps(self.accounts))

    def account(self, login: str, *, email: str, email_verified: bool | None = True, name: str = "", **claims: Any) -> str:
        """Create or replace the account ``login``; returns the login."""
        self.accounts[login] = {"email": email, "email_verified": email_verified, "name": name, **claims}
        self._write_accounts()
        return login

    def start(self) -> Provider:
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(["node", str(HERE / "provider.mjs"), str(self.config_file)], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while "listening" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the OpenID provider did not start: {self.log.read_text()}")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)


@contextmanager
def running_provider(workdir: Path, redirect_uris: list[str], **options: Any) -> Iterator[Provider]:
    install()
    provider = Provider(workdir, redirect_uris, **options).start()
    try:
        yield provider
    finally:
        provider.stop()


async def sign_in_at_provider(url: str, login: str, *, abort: bool = False) -> str:
    """Open the provider's authorization ``url``, sign in on its login page as ``login`` (or
    abort there), and return the URL it sends the browser back to (not followed)."""
    async with httpx.AsyncClient(timeout=30) as browser:
        response = await browser.get(url)
        for _ in range(10):
            if response.status_code in (302, 303):
                location = urljoin(str(response.url), response.headers["location"])
                if not location.startswith(url.split("/auth")[0]):
                    return location
                response = await browser.get(location)
                continue
            assert response.status_code == 200, (response.status_code, response.text[:500])
            page = response.text
            if abort:
                abort_link = re.search(r'href="([^"]*/abort)"', page)
                assert abort_link, page[:2000]
                response = await browser.get(urljoin(str(response.url), abort_link.group(1)))
                continue
            action = re.search(r'<form[^>]*action="([^"]+)"', page)
            assert action and 'name="login"' in page, page[:2000]
            response = await browser.post(
                urljoin(str(response.url), action.group(1)), data={"prompt": "login", "login": login, "password": "any"}
            )
        raise AssertionError("the provider never sent the browser back")


class Tampering(httpx.AsyncBaseTransport):
    """keyrelease's connection to the provider, with the ID token of the code exchange's
    answer replaced by ``change(claims)``, signed with the provider's own key (or, with
    ``foreign_key``, with a key the provider does not publish)."""

    def __init__(self, change: Callable[[dict[str, Any]], dict[str, Any]], *, foreign_key: bool = False) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.change = change
        self.key = RSAKey.generate_key(2048, parameters={"kid": "test-signing-key"}, private=True) if foreign_key else SIGNING_KEY

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method != "POST" or not request.url.path.endswith("/token"):
            return response
        await response.aread()
        body = json.loads(response.content)
        original = jwt.decode(body["id_token"], SIGNING_KEY)
        body["id_token"] = jwt.encode({"alg": "RS256", "kid": "test-signing-key"}, self.change(dict(original.claims)), self.key)
        return httpx.Response(response.status_code, json=body)

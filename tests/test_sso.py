"""Sign-in with the institution's identity provider, against a real OpenID Connect provider
(panva/oidc-provider, tests/identity_provider.py) on 127.0.0.1, through the real app (httpx over
ASGI, lifespan started) on SQLite and PostgreSQL: the Authorization Code flow with PKCE, state
and nonce; the admin created and then updated from the provider; the session cookie and its
CSRF check, timeouts and sign-out; and each way a sign-in fails, with its one message and
nothing half-done.

The app's clock starts at the real time (the provider's ID tokens carry the real time) and
moves only when a test moves it.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from dbutil import dump
from environment import BACKENDS, empty_postgres
from identity_provider import CLIENT_ID, CLIENT_SECRET, Provider, Tampering, needs_node, running_provider, sign_in_at_provider
from keyrelease import sealing
from keyrelease.clock import FrozenClock
from keyrelease.models import Admin, AdminSession, ApiKey, SignInRequest
from keyrelease.service.admins import create_admin
from keyrelease.service.offboarding import disable_admin
from keyrelease.service.sso import set_provider
from keyrelease.testing.processes import free_port, run_cli
from keyrelease.testing.settings import SECRET_KEY, base_env
from keyrelease.web.sign_in import CSRF_REFUSED, SESSION_ENDED

pytestmark = needs_node

PUBLIC = "http://keyrelease.test"
ME = "{ me { email name institution { name } } }"
CSRF = {"X-Keyrelease-CSRF": "1", "Origin": PUBLIC}


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    redirect = [f"{PUBLIC}/sso/callback", "https://keyrelease.test/sso/callback"]
    with running_provider(tmp_path_factory.mktemp("provider"), redirect) as running:
        yield running


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(datetime.now(UTC).replace(microsecond=0))


@pytest.fixture
def env_overrides() -> dict[str, str]:
    return {"KEYRELEASE_PUBLIC_URL": PUBLIC, "KEYRELEASE_SSO_TIMEOUT_SECONDS": "2"}


async def configure(
    clock: FrozenClock, provider: Provider, *, institution: str = "Uni", issuer: str | None = None,
    admin_claim: str | None = "groups=keyrelease-admins", domains: tuple[str, ...] = ("uni.example",),
) -> None:
    await set_provider(
        clock, SECRET_KEY.encode(), institution=institution, issuer=issuer or provider.issuer, client_id=CLIENT_ID,
        client_secret=CLIENT_SECRET, admin_claim=admin_claim, email_domains=domains,
    )


async def start(client: httpx.AsyncClient, email: str) -> httpx.Response:
    return await client.post("/sso/start", json={"email": email})


async def answer(client: httpx.AsyncClient, email: str, login: str, **options: Any) -> str:
    """Start a sign-in in ``client`` (the browser) and sign in at the provider: the URL the
    provider sends the browser back to."""
    started = await start(client, email)
    assert started.status_code == 200, started.text
    return await sign_in_at_provider(started.json()["redirect"], login, **options)


async def come_back(client: httpx.AsyncClient, url: str) -> httpx.Response:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == str(client.base_url).rstrip("/")
    return await client.get(f"{parts.path}?{parts.query}")


async def sign_in(client: httpx.AsyncClient, email: str, login: str) -> httpx.Response:
    return await come_back(client, await answer(client, email, login))


async def me(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> dict[str, Any]:
    response = await client.post("/graphql", json={"query": ME}, headers=CSRF if headers is None else headers)
    return response.json()


def failure(response: httpx.Response) -> str:
    """The message of the sign-in failure page."""
    assert response.headers["content-type"].startswith("text/html"), response.text
    start = response.text.index('id="sign-in-failure"')
    return response.text[response.text.index(">", start) + 1 : response.text.index("</p>", start)]


def admin_account(provider: Provider, login: str, email: str, name: str = "Ada Lovelace", **claims: Any) -> str:
    return provider.account(login, email=email, name=name, groups=["staff", "keyrelease-admins"], **claims)


# -- the flow --------------------------------------------------------------------------------


async def test_first_sign_in_creates_the_admin_and_opens_a_session(client, clock, provider):
    await configure(clock, provider)
    login = admin_account(provider, "ada-first", "ada.first@uni.example")
    started = await start(client, "Ada.First@UNI.example")
    assert started.status_code == 200
    url = started.json()["redirect"]
    query = dict(p.split("=", 1) for p in urlsplit(url).query.split("&"))
    assert query["code_challenge_method"] == "S256" and query["nonce"] and query["state"] and query["code_challenge"]
    assert "keyrelease-sign-in" in started.headers["set-cookie"]
    back = await come_back(client, await sign_in_at_provider(url, login))
    assert back.status_code == 303 and back.headers["location"] == "/#/keys", back.text
    cookie = back.headers["set-cookie"]
    assert cookie.startswith("keyrelease-session=") and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert "Secure" not in cookie  # the public URL is http here
    assert (await me(client))["data"]["me"] == {"email": "ada.first@uni.example", "name": "Ada Lovelace", "institution": {"name": "Uni"}}
    value = client.cookies["keyrelease-session"]
    rows = await AdminSession.all().values_list("id_hash", flat=True)
    assert value not in rows and len(rows) == 1  # only a hash is stored


async def test_email_and_name_follow_the_provider_and_keys_keep_their_snapshot(client, clock, provider, api):
    await configure(clock, provider)
    login = admin_account(provider, "ada-moves", "ada.old@uni.example", name="Ada Old")
    assert (await sign_in(client, "ada.old@uni.example", login)).status_code == 303
    created = await client.post(
        "/graphql", headers=CSRF,
        json={"query": "mutation { createKey(input: {name: \"k\", kind: INSTITUTIONAL}) { __typename ... on ApiKey { id } } }"},
    )
    assert created.json()["data"]["createKey"]["__typename"] == "ApiKey", created.text
    admin_account(provider, login, "ada.new@uni.example", name="Ada New")
    assert (await sign_in(client, "ada.new@uni.example", login)).status_code == 303
    assert (await me(client))["data"]["me"]["email"] == "ada.new@uni.example"
    assert await Admin.filter(institution__name="Uni").count() == 1
    admin = await Admin.get(email="ada.new@uni.example")
    assert admin.name == "Ada New"
    assert await ApiKey.filter(created_by_id=admin.id).values_list("notify_email", flat=True) == ["ada.old@uni.example"]


async def test_an_admin_made_by_the_cli_is_linked_at_first_sign_in(client, clock, provider):
    await configure(clock, provider)
    made = await create_admin(clock, institution="Uni", email="cli.admin@uni.example", name="CLI")
    login = admin_account(provider, "cli-admin", "cli.admin@uni.example", name="Clio")
    assert (await sign_in(client, "cli.admin@uni.example", login)).status_code == 303
    assert (await me(client))["data"]["me"]["name"] == "Clio"
    assert await Admin.all().count() == 1
    token = await client.post("/graphql", json={"query": ME}, headers={"Authorization": f"Bearer {made.token}"})
    assert token.json()["data"]["me"]["email"] == "cli.admin@uni.example"  # bearer tokens keep working


async def test_a_cookie_without_the_csrf_header_or_from_another_origin_is_refused(client, clock, provider):
    await configure(clock, provider)
    await sign_in(client, "csrf@uni.example", admin_account(provider, "csrf", "csrf@uni.example"))
    for headers in ({}, {"Origin": PUBLIC}, {"X-Keyrelease-CSRF": "1"}, {"X-Keyrelease-CSRF": "1", "Origin": "https://evil.example"}):
        body = await me(client, headers)
        assert body["errors"][0]["message"] == CSRF_REFUSED and body["data"] is None, headers
    refused = await client.post("/sso/sign-out", headers={"Origin": "https://evil.example", "X-Keyrelease-CSRF": "1"})
    assert refused.status_code == 403
    assert (await me(client))["data"]["me"]["email"] == "csrf@uni.example"  # the refused sign-out ended nothing


async def test_sign_out_ends_the_session_on_the_server(client, clock, provider):
    await configure(clock, provider)
    await sign_in(client, "bye@uni.example", admin_account(provider, "bye", "bye@uni.example"))
    copied = client.cookies["keyrelease-session"]
    out = await client.post("/sso/sign-out", headers=CSRF)
    assert out.status_code == 200 and out.json() == {"signedOut": True}
    assert 'keyrelease-session=""' in out.headers["set-cookie"] and "Max-Age=0" in out.headers["set-cookie"]
    client.cookies.set("keyrelease-session", copied)  # a copy of the cookie taken before sign-out
    assert (await me(client))["errors"][0]["message"] == SESSION_ENDED


async def test_a_session_ends_when_idle_and_at_its_time_limit(client, app, clock, provider):
    await configure(clock, provider)
    login = admin_account(provider, "timer", "timer@uni.example")
    await sign_in(client, "timer@uni.example", login)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC) as busy:
        await sign_in(busy, "timer@uni.example", login)
        clock.advance(29 * 60)
        assert "errors" not in await me(client)  # 29 minutes idle: still on, and the use is recorded
        clock.advance(29 * 60)
        assert "errors" not in await me(client)
        clock.advance(30 * 60)
        assert (await me(client))["errors"][0]["message"] == SESSION_ENDED
        clock.advance(-88 * 60)
        for _ in range(12 * 60 // 20 - 1):  # the busy browser, every 20 minutes for 12 hours
            clock.advance(20 * 60)
            assert "errors" not in await me(busy)
        clock.advance(20 * 60)  # 12 hours after sign-in, however active
        assert (await me(busy))["errors"][0]["message"] == SESSION_ENDED


@pytest.mark.parametrize("env_overrides", [{"KEYRELEASE_PUBLIC_URL": "https://keyrelease.test"}])
async def test_over_https_the_cookies_are_host_prefixed_and_secure(app, clock, provider):
    await configure(clock, provider)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://keyrelease.test") as browser:
        started = await start(browser, "sec@uni.example")
        assert started.headers["set-cookie"].startswith("__Host-keyrelease-sign-in=")
        url = await sign_in_at_provider(started.json()["redirect"], admin_account(provider, "sec", "sec@uni.example"))
        back = await come_back(browser, url)
        cookie = back.headers["set-cookie"]
        assert cookie.startswith("__Host-keyrelease-session=")
        for attribute in ("HttpOnly", "Secure", "Path=/", "SameSite=lax", "Max-Age=43200"):
            assert attribute in cookie
        assert "Domain" not in cookie
        body = (await browser.post("/graphql", json={"query": ME}, headers={**CSRF, "Origin": "https://keyrelease.test"})).json()
        assert body["data"]["me"]["email"] == "sec@uni.example"


class Counting(httpx.AsyncBaseTransport):
    """keyrelease's connection to the provider, counting the requests by path."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path)
        return await self.inner.handle_async_request(request)


async def test_discovery_is_cached_for_its_lifetime_then_read_again(app, client, clock, provider):
    await configure(clock, provider)
    counting = app.state.services.sign_in.client.transport = Counting()
    login = admin_account(provider, "cached", "cached@uni.example")
    for _ in range(3):
        assert (await sign_in(client, "cached@uni.example", login)).status_code == 303
    discovery = "/.well-known/openid-configuration"
    assert counting.paths.count(discovery) == 1 and counting.paths.count("/jwks") == 1
    clock.advance(3601)  # KEYRELEASE_SSO_DISCOVERY_TTL_SECONDS: an hour
    assert (await start(client, "cached@uni.example")).status_code == 200
    assert counting.paths.count(discovery) == 2


@pytest.mark.parametrize("env_overrides", [{"KEYRELEASE_PUBLIC_URL": PUBLIC, "KEYRELEASE_RATE_LIMIT_SIGN_IN_IP": "3/minute"}])
async def test_sign_ins_are_rate_limited_per_client_address(client, clock, provider):
    await configure(clock, provider)
    answers = [await start(client, "flood@uni.example") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 200]
    refused = await client.get("/sso/callback?state=x&code=y")
    assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    assert refused.json()["error"] == "Too many requests; try again later."
    assert await SignInRequest.all().count() == 3


# -- failure paths: one message each, nothing half-done --------------------------------------


async def nothing_signed_in(client: httpx.AsyncClient) -> None:
    assert "keyrelease-session" not in client.cookies
    assert await AdminSession.all().count() == 0


async def test_an_email_of_no_configured_domain_is_told_so(client, clock, provider):
    await configure(clock, provider)
    refused = await start(client, "someone@elsewhere.example")
    assert refused.status_code == 404
    assert refused.json()["error"].startswith("No institution signs in with email addresses at elsewhere.example.")
    assert (await start(client, "not an email")).json()["reason"] == "not_an_email"
    assert (await client.post("/sso/start", json={"email": "a@uni.example", "pad": "x" * 5000})).status_code == 413
    assert (await client.post("/sso/start", content=b"[1]", headers={"Content-Type": "application/json"})).status_code == 400
    assert (await client.post("/sso/start", data={"email": "a@uni.example"})).status_code == 415
    assert await SignInRequest.all().count() == 0


async def test_a_provider_that_is_down_is_reported_and_nothing_starts(client, clock, provider):
    await configure(clock, provider, issuer=f"http://127.0.0.1:{free_port()}")
    refused = await start(client, "down@uni.example")
    assert refused.status_code == 502
    assert refused.json()["error"].startswith("Your institution's identity provider (http://127.0.0.1:")
    assert "could not be reached. Nothing changed; try again in a moment." in refused.json()["error"]
    assert await SignInRequest.all().count() == 0


@contextlib.asynccontextmanager
async def silent_server() -> AsyncIterator[int]:
    """A TCP server that accepts connections and never answers."""
    held: list[asyncio.StreamWriter] = []

    async def hold(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        held.append(writer)

    server = await asyncio.start_server(hold, "127.0.0.1", 0)
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        for writer in held:
            writer.close()


async def test_a_provider_that_does_not_answer_is_waited_for_a_bounded_time(client, clock, provider):
    async with silent_server() as port:
        await configure(clock, provider, issuer=f"http://127.0.0.1:{port}")
        refused = await asyncio.wait_for(start(client, "slow@uni.example"), 20)
    assert refused.status_code == 502
    assert f"(http://127.0.0.1:{port}) did not answer within 2 seconds." in refused.json()["error"]
    assert await SignInRequest.all().count() == 0


async def test_a_provider_that_calls_itself_by_another_issuer_is_refused(client, clock, provider):
    await configure(clock, provider, issuer=f"http://localhost:{provider.port}")
    refused = await start(client, "iss@uni.example")
    assert refused.status_code == 502
    assert refused.json()["reason"] == "bad_issuer"
    assert "failed the issuer check" in refused.json()["error"]
    assert await SignInRequest.all().count() == 0


@pytest.mark.parametrize(
    ("change", "check", "foreign"),
    [
        (lambda c: {**c, "iss": "http://127.0.0.1:1"}, "issuer", False),
        (lambda c: {**c, "aud": "someone-else"}, "audience", False),
        (lambda c: {**c, "nonce": "another-sign-in"}, "nonce", False),
        (lambda c: {**c, "exp": c["iat"] - 3600, "iat": c["iat"] - 7200}, "expiry", False),
        (lambda c: {**c, "iat": c["iat"] + 3600, "exp": c["exp"] + 3600}, "issued-at", False),
        (lambda c: c, "signature", True),
    ],
    ids=["issuer", "audience", "nonce", "expired", "issued-in-the-future", "signature"],
)
async def test_an_id_token_wrong_in_one_check_is_refused(app, client, clock, provider, change, check, foreign):
    await configure(clock, provider)
    login = admin_account(provider, f"tampered-{check}", f"tampered-{check}@uni.example")
    app.state.services.sign_in.client.transport = Tampering(change, foreign_key=foreign)
    back = await sign_in(client, f"tampered-{check}@uni.example", login)
    assert back.status_code == 502
    assert failure(back).startswith(f"The identity provider&#x27;s answer failed the {check} check:")
    await nothing_signed_in(client)
    assert await Admin.all().count() == 0


async def test_an_expired_authorization_response_is_refused(client, clock, provider):
    await configure(clock, provider)
    url = await answer(client, "late@uni.example", admin_account(provider, "late", "late@uni.example"))
    clock.advance(601)
    back = await come_back(client, url)
    assert back.status_code == 400
    assert failure(back) == "This sign-in took longer than 10 minutes and has expired. Start again from the sign-in page."
    await nothing_signed_in(client)


async def test_a_replayed_authorization_response_is_refused(client, app, clock, provider):
    await configure(clock, provider)
    login = admin_account(provider, "replay", "replay@uni.example")
    url = await answer(client, "replay@uni.example", login)
    browser_cookie = client.cookies["keyrelease-sign-in"]
    assert (await come_back(client, url)).status_code == 303
    client.cookies.set("keyrelease-sign-in", browser_cookie)  # even with the browser's cookie back
    again = await come_back(client, url)
    assert again.status_code == 400
    assert failure(again) == "This sign-in answer was already used. Start again from the sign-in page."
    assert await AdminSession.all().count() == 1


async def test_parallel_uses_of_one_answer_sign_in_once(client, app, clock, provider):
    await configure(clock, provider)
    url = await answer(client, "twice@uni.example", admin_account(provider, "twice", "twice@uni.example"))
    cookie = client.cookies["keyrelease-sign-in"]

    async def use() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url=PUBLIC, cookies={"keyrelease-sign-in": cookie}) as other:
            return (await come_back(other, url)).status_code

    statuses = sorted(await asyncio.gather(*(use() for _ in range(4))))
    assert statuses == [303, 400, 400, 400]
    assert await AdminSession.all().count() == 1


async def test_an_answer_in_another_browser_is_refused(client, app, clock, provider):
    await configure(clock, provider)
    url = await answer(client, "csrf-login@uni.example", admin_account(provider, "victim", "csrf-login@uni.example"))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as other_browser:
        back = await come_back(other_browser, url)
    assert back.status_code == 400
    assert failure(back).startswith("This sign-in answer does not belong to a sign-in started in this browser.")
    assert await AdminSession.all().count() == 0
    assert (await come_back(client, url)).status_code == 303  # nothing was used up: the right browser still can


async def test_a_sign_in_cancelled_at_the_provider_is_told_so(client, clock, provider):
    await configure(clock, provider)
    url = await answer(client, "cancel@uni.example", admin_account(provider, "cancel", "cancel@uni.example"), abort=True)
    back = await come_back(client, url)
    assert failure(back) == "Your identity provider did not sign you in (access_denied). Start again from the sign-in page."
    await nothing_signed_in(client)


async def test_an_unverified_email_is_refused(client, clock, provider):
    await configure(clock, provider)
    login = admin_account(provider, "unverified", "unverified@uni.example", email_verified=False)
    back = await sign_in(client, "unverified@uni.example", login)
    assert back.status_code == 403
    assert failure(back) == (
        "Your identity provider has not verified your email address unverified@uni.example. Verify it there, then sign in again."
    )
    await nothing_signed_in(client)
    assert await Admin.all().count() == 0


async def test_entra_ids_verified_domain_claim_stands_for_email_verified(client, clock, provider):
    await configure(clock, provider)
    login = admin_account(provider, "entra", "entra@uni.example", email_verified=None, xms_edov=True)
    assert (await sign_in(client, "entra@uni.example", login)).status_code == 303
    assert (await me(client))["data"]["me"]["email"] == "entra@uni.example"


async def test_an_email_outside_the_institutions_domains_is_refused(client, clock, provider):
    await configure(clock, provider)
    login = admin_account(provider, "outsider", "outsider@gmail.example")
    back = await sign_in(client, "outsider@uni.example", login)
    assert back.status_code == 403
    assert failure(back) == "Your identity provider signed you in as outsider@gmail.example, which is not an address of Uni (uni.example)."
    await nothing_signed_in(client)
    assert await Admin.all().count() == 0


async def test_a_user_the_provider_does_not_mark_as_admin_is_refused(client, clock, provider):
    await configure(clock, provider)
    login = provider.account("student", email="student@uni.example", name="S", groups=["students"])
    back = await sign_in(client, "student@uni.example", login)
    assert back.status_code == 403
    assert failure(back) == "Your identity provider does not mark you as an admin of Uni (groups must include keyrelease-admins)."
    await nothing_signed_in(client)
    assert await Admin.all().count() == 0


async def test_an_admin_no_longer_marked_as_admin_is_refused_and_disabled(client, clock, provider):
    await configure(clock, provider)
    login = admin_account(provider, "leaver", "leaver@uni.example")
    await sign_in(client, "leaver@uni.example", login)
    assert "errors" not in await me(client)
    provider.account(login, email="leaver@uni.example", name="Leaver", groups=["staff"])
    transport = httpx.ASGITransport(app=client._transport.app)
    async with httpx.AsyncClient(transport=transport, base_url=PUBLIC) as second_browser:
        back = await sign_in(second_browser, "leaver@uni.example", login)
    assert back.status_code == 403
    assert failure(back).endswith(
        "Your admin access has been withdrawn: you are signed out everywhere and your pending keys are locked."
    )
    assert (await Admin.get(email="leaver@uni.example")).disabled_at is not None
    assert (await me(client))["errors"][0]["message"] == SESSION_ENDED  # the first browser's session too


async def test_a_disabled_admin_is_refused(client, clock, provider):
    await configure(clock, provider)
    login = admin_account(provider, "disabled", "disabled@uni.example")
    await sign_in(client, "disabled@uni.example", login)
    await disable_admin(clock, "disabled@uni.example")
    assert (await me(client))["errors"][0]["message"] == SESSION_ENDED
    await client.post("/sso/sign-out", headers=CSRF)
    back = await sign_in(client, "disabled@uni.example", login)
    assert back.status_code == 403
    assert failure(back) == "Your admin account is disabled. Ask whoever runs keyrelease to enable it."
    assert await AdminSession.all().count() == 1  # the first session only (signed out): none was opened


# -- the CLI -----------------------------------------------------------------------------------


@pytest.mark.parametrize("backend", BACKENDS)
def test_set_show_and_remove_idp_from_the_cli_never_show_or_store_the_secret(backend, request, tmp_path, provider):
    env = base_env(tmp_path)
    if backend == "postgres":
        env["KEYRELEASE_DATABASE_URL"] = request.getfixturevalue("postgres_url")
        empty_postgres(env["KEYRELEASE_DATABASE_URL"])
    secret_file = tmp_path / "client-secret"
    secret_file.write_text(CLIENT_SECRET + "\n")
    args = ["--institution", "Cli U", "--issuer", provider.issuer, "--client-id", CLIENT_ID, "--client-secret-file",
            str(secret_file), "--admin-claim", "groups=keyrelease-admins", "--email-domain", "cli.example",
            "--email-domain", "@Staff.Cli.Example"]
    done = run_cli(env, "institution", "set-idp", *args)
    assert done.returncode == 0, done.stderr
    shown = run_cli(env, "institution", "show-idp", "--institution", "Cli U")
    assert shown.returncode == 0
    assert "groups=keyrelease-admins" in shown.stdout and "cli.example, staff.cli.example" in shown.stdout
    assert provider.issuer in shown.stdout and "client secret (set; never shown)" in shown.stdout
    for output in (done.stdout, done.stderr, shown.stdout, shown.stderr):
        assert CLIENT_SECRET not in output
    stored = asyncio.run(dump(env["KEYRELEASE_DATABASE_URL"]))
    assert "identity_provider:" in stored and CLIENT_SECRET not in stored

    taken = run_cli(env, "institution", "set-idp", *[a.replace("Cli U", "Other U") for a in args])
    assert taken.returncode == 2
    assert taken.stderr.strip() == "error: the domain cli.example already belongs to another institution's provider"
    insecure = run_cli(env, "institution", "set-idp", *[a.replace(provider.issuer, "http://idp.example") for a in args])
    assert insecure.returncode == 2 and "must be an https:// URL" in insecure.stderr

    removed = run_cli(env, "institution", "remove-idp", "--institution", "Cli U")
    assert removed.returncode == 0
    gone = run_cli(env, "institution", "show-idp", "--institution", "Cli U")
    assert gone.returncode == 2 and gone.stderr.strip() == "error: no identity provider is set for the institution 'Cli U'"


class Hanging(httpx.AsyncBaseTransport):
    """keyrelease's connection to the provider, where the code exchange never gets an answer."""

    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/token"):
            await asyncio.Event().wait()
        return await self.inner.handle_async_request(request)


async def test_a_code_exchange_that_gets_no_answer_is_waited_for_a_bounded_time(app, client, clock, provider):
    await configure(clock, provider)
    login = admin_account(provider, "hanging", "hanging@uni.example")
    url = await answer(client, "hanging@uni.example", login)
    app.state.services.sign_in.client.transport = Hanging()
    back = await asyncio.wait_for(come_back(client, url), 20)
    assert back.status_code == 502
    assert failure(back).endswith("did not answer within 2 seconds. Nothing changed; try again in a moment.")
    await nothing_signed_in(client)
    assert await Admin.all().count() == 0


async def test_a_code_the_provider_refuses_is_reported(client, clock, provider):
    await configure(clock, provider)
    url = await answer(client, "badcode@uni.example", admin_account(provider, "badcode", "badcode@uni.example"))
    back = await come_back(client, url.replace("code=", "code=x"))
    assert back.status_code == 502
    assert failure(back) == "The identity provider refused the sign-in code (invalid_grant). Start again from the sign-in page."
    await nothing_signed_in(client)


async def test_an_answer_to_no_sign_in_is_refused(client, clock, provider):
    await configure(clock, provider)
    client.cookies.set("keyrelease-sign-in", "made-up-state")
    back = await client.get("/sso/callback?state=made-up-state&code=abc")
    assert back.status_code == 400
    assert failure(back) == "This sign-in answer is not one keyrelease is waiting for. Start again from the sign-in page."
    await nothing_signed_in(client)


async def test_an_email_that_is_another_admins_is_refused(client, clock, provider):
    await configure(clock, provider)
    await create_admin(clock, institution="Other U", email="taken@uni.example")
    back = await sign_in(client, "taken@uni.example", admin_account(provider, "taken", "taken@uni.example"))
    assert back.status_code == 409
    assert failure(back) == "The email taken@uni.example belongs to another keyrelease admin. Ask whoever runs keyrelease."
    await nothing_signed_in(client)
    assert await Admin.all().count() == 1


async def test_a_client_secret_sealed_under_another_server_secret_is_reported_not_used(app, client, clock, provider):
    await configure(clock, provider)
    app.state.services.sign_in._secret = b"another-server-secret-0123456789abcdef"
    refused = await start(client, "rotated@uni.example")
    assert refused.status_code == 500
    assert refused.json()["error"] == "Your institution's sign-in is not configured correctly. Tell whoever runs keyrelease."
    assert await SignInRequest.all().count() == 0


def test_a_sealed_secret_opens_only_with_its_server_secret_purpose_and_context():
    sealed = sealing.seal(b"s" * 32, "purpose", "1", "the secret")
    assert "the secret" not in sealed and sealed != sealing.seal(b"s" * 32, "purpose", "1", "the secret")  # a new nonce each time
    assert sealing.unseal(b"s" * 32, "purpose", "1", sealed) == "the secret"
    for secret, purpose, context, value in [
        (b"t" * 32, "purpose", "1", sealed), (b"s" * 32, "other", "1", sealed), (b"s" * 32, "purpose", "2", sealed),
        (b"s" * 32, "purpose", "1", sealed[:-2] + ("A" if sealed[-2] != "A" else "B") + sealed[-1]), (b"s" * 32, "purpose", "1", "plain"),
    ]:
        with pytest.raises(sealing.SealBroken):
            sealing.unseal(secret, purpose, context, value)

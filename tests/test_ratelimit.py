"""Rate limits on the token endpoint, the partner's revealKey and admin mutations: per client
address and per target, 429 / RATE_LIMITED with Retry-After, counted in the database (so
shared by instances), honouring X-Forwarded-For only from trusted proxies. The clock moves;
nothing sleeps."""

from __future__ import annotations

import asyncio
import ipaddress
import uuid

import pytest

from keyrelease.client_address import client_address
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.models import Admin, RateLimitCounter
from keyrelease.service.ratelimit import Rate
from keyrelease.testing.api import CREATE_KEY, running_app
from keyrelease.testing.settings import base_env
from keyrelease.testing.tokens import FORM, GRANT, basic_auth, request_token

LOGIN = "/ids/auth/login"
PARTNER_REVEAL = """
mutation($input: RevealKeyInput!) {
  revealKey(input: $input) { __typename ... on Error { message } }
}"""


def unknown_client() -> str:
    return f"us-east-1#{uuid.uuid4()}"


async def token_from(client, client_id: str, forwarded_for: str | None = None):
    headers = {**FORM, "Authorization": basic_auth(client_id, "not-the-secret")}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    return await client.post(LOGIN, content=GRANT, headers=headers)


async def partner_reveal(api, key_id: str, otp: str = "AAAA-BBBB-CCCC-DDDD", forwarded_for: str | None = None):
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return await api.client.post(
        "/graphql",
        json={"query": PARTNER_REVEAL, "variables": {"input": {"keyId": key_id, "oneTimePassword": otp}}},
        headers=headers,
    )


# -- the token endpoint -------------------------------------------------------------------


class TestTokenEndpoint:
    @pytest.fixture
    def env_overrides(self):
        return {
            "KEYRELEASE_RATE_LIMIT_STORE": "database",
            "KEYRELEASE_RATE_LIMIT_TOKEN_CLIENT": "3/minute",
            "KEYRELEASE_RATE_LIMIT_TOKEN_IP": "5/minute",
        }

    async def test_the_fourth_request_for_one_client_in_a_minute_gets_429_with_retry_after(self, client, clock):
        client_id = unknown_client()
        for _ in range(3):
            assert (await request_token(client, client_id, "wrong")).status_code == 401
        clock.advance(seconds=20)
        refused = await request_token(client, client_id, "wrong")
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "40"  # the window ends at the full minute
        assert refused.headers["cache-control"] == "no-store"
        assert refused.json() == {"error": "slow_down", "error_description": "Too many requests; retry after 40 seconds."}

    async def test_the_next_window_starts_afresh(self, client, clock):
        client_id = unknown_client()
        for _ in range(3):
            await request_token(client, client_id, "wrong")
        assert (await request_token(client, client_id, "wrong")).status_code == 429
        clock.advance(seconds=60)
        assert (await request_token(client, client_id, "wrong")).status_code == 401

    async def test_a_limited_client_does_not_stop_another_client_below_the_address_limit(self, client):
        first = unknown_client()
        for _ in range(4):
            await request_token(client, first, "wrong")
        assert (await request_token(client, unknown_client(), "wrong")).status_code == 401

    async def test_one_address_is_limited_across_all_client_ids(self, client):
        for _ in range(5):
            assert (await request_token(client, unknown_client(), "wrong")).status_code == 401
        assert (await request_token(client, unknown_client(), "wrong")).status_code == 429
        no_credentials = await client.post(LOGIN, content=GRANT, headers=FORM)
        assert no_credentials.status_code == 429

    async def test_x_forwarded_for_is_ignored_without_trusted_proxies(self, client):
        for n in range(5):
            assert (await token_from(client, unknown_client(), f"198.51.100.{n}")).status_code == 401
        assert (await token_from(client, unknown_client(), "198.51.100.99")).status_code == 429

    async def test_the_counter_is_one_row_per_bucket_in_the_database(self, client):
        client_id = unknown_client()
        for _ in range(2):
            await request_token(client, client_id, "wrong")
        rows = {row.bucket: row.count for row in await RateLimitCounter.all()}
        assert rows[f"token_client:127.0.0.1 {client_id}"] == 2
        assert rows["token_ip:127.0.0.1"] == 2


class TestBehindATrustedProxy:
    @pytest.fixture
    def env_overrides(self):
        # httpx's ASGI transport connects from 127.0.0.1: here, the proxy.
        return {"KEYRELEASE_RATE_LIMIT_TOKEN_IP": "2/minute", "KEYRELEASE_TRUSTED_PROXIES": "127.0.0.1, 10.0.0.0/8"}

    async def test_each_forwarded_client_address_has_its_own_budget(self, client):
        for _ in range(2):
            assert (await token_from(client, unknown_client(), "203.0.113.1")).status_code == 401
        assert (await token_from(client, unknown_client(), "203.0.113.1")).status_code == 429
        assert (await token_from(client, unknown_client(), "203.0.113.2")).status_code == 401

    async def test_a_client_cannot_escape_by_prepending_addresses(self, client):
        for n in range(2):
            await token_from(client, unknown_client(), f"192.0.2.{n}, 203.0.113.7")
        # The right-most address not of a trusted proxy is what counts; the rest is the client's word.
        refused = await token_from(client, unknown_client(), "192.0.2.200, 203.0.113.7, 10.1.2.3")
        assert refused.status_code == 429


def test_client_address_takes_the_right_most_untrusted_forwarded_entry():
    trusted = (ipaddress.ip_network("10.0.0.0/8"),)
    assert client_address("10.0.0.1", ["1.1.1.1, 2.2.2.2, 10.0.0.9"], trusted) == "2.2.2.2"
    assert client_address("10.0.0.1", ["1.1.1.1", "2.2.2.2"], trusted) == "2.2.2.2"  # two headers, one list
    assert client_address("192.0.2.5", ["1.1.1.1"], trusted) == "192.0.2.5"  # not from a proxy: ignored
    assert client_address("10.0.0.1", [], trusted) == "10.0.0.1"
    assert client_address("10.0.0.1", ["10.0.0.7"], trusted) == "10.0.0.7"  # every hop trusted
    assert client_address("10.0.0.1", ["1.1.1.1"], ()) == "10.0.0.1"  # no proxies configured


def test_rates_and_proxies_are_validated_at_start_up(tmp_path):
    assert Rate.parse("10/minute") == Rate(10, 60)
    assert Rate.parse(" 3 / hour ") == Rate(3, 3600)
    assert Rate.parse("off") is None
    with pytest.raises(ConfigError, match="KEYRELEASE_RATE_LIMIT_PARTNER_KEY"):
        Settings.from_env(base_env(tmp_path, KEYRELEASE_RATE_LIMIT_PARTNER_KEY="lots"))
    with pytest.raises(ConfigError, match="KEYRELEASE_TRUSTED_PROXIES.*'proxy.example'"):
        Settings.from_env(base_env(tmp_path, KEYRELEASE_TRUSTED_PROXIES="10.0.0.1, proxy.example"))
    with pytest.raises(ConfigError, match="KEYRELEASE_RATE_LIMIT_STORE"):
        Settings.from_env(base_env(tmp_path, KEYRELEASE_RATE_LIMIT_STORE="redis"))


def test_the_defaults_leave_room_for_real_integrations(tmp_path):
    limits = Settings.from_env(base_env(tmp_path)).rate_limits
    assert (limits.token_client, limits.token_ip) == (Rate(600, 60), Rate(3000, 60))
    assert (limits.partner_ip, limits.partner_key, limits.admin) == (Rate(20, 60), Rate(10, 60), Rate(120, 60))
    assert limits.admin_query == Rate(600, 60)  # queries have a budget of their own, above mutations'
    with pytest.raises(ConfigError, match="KEYRELEASE_RATE_LIMIT_ADMIN_QUERY"):
        Settings.from_env(base_env(tmp_path, KEYRELEASE_RATE_LIMIT_ADMIN_QUERY="often"))
    assert Settings.from_env(base_env(tmp_path, KEYRELEASE_RATE_LIMIT_ADMIN_QUERY="off")).rate_limits.admin_query is None


# -- the partner's revealKey ----------------------------------------------------------------


class TestPartnerReveal:
    @pytest.fixture
    def env_overrides(self):
        return {
            "KEYRELEASE_RATE_LIMIT_STORE": "database",
            "KEYRELEASE_RATE_LIMIT_PARTNER_KEY": "2/minute",
            "KEYRELEASE_RATE_LIMIT_PARTNER_IP": "4/minute",
        }

    async def test_the_third_guess_at_one_key_in_a_minute_is_rate_limited(self, api, clock):
        key_id = str(uuid.uuid4())
        for _ in range(2):
            body = (await partner_reveal(api, key_id)).json()
            assert body["data"]["revealKey"]["__typename"] == "VerificationError"
        clock.advance(seconds=15)
        refused = await partner_reveal(api, key_id)
        assert refused.status_code == 200
        assert refused.headers["retry-after"] == "45"
        body = refused.json()
        assert body["data"] is None
        assert body["errors"][0]["message"] == "Too many requests; try again later."
        assert body["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 45}
        clock.advance(seconds=45)
        assert (await partner_reveal(api, key_id)).json()["data"]["revealKey"]["__typename"] == "VerificationError"

    async def test_the_key_id_is_counted_however_it_is_spelt(self, api):
        key_id = uuid.uuid4()
        await partner_reveal(api, str(key_id))
        await partner_reveal(api, str(key_id).upper())
        body = (await partner_reveal(api, key_id.hex)).json()
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"

    async def test_one_address_is_limited_across_keys(self, api):
        for _ in range(4):
            assert "errors" not in (await partner_reveal(api, str(uuid.uuid4()))).json()
        body = (await partner_reveal(api, str(uuid.uuid4()))).json()
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"

    async def test_the_limit_is_shared_by_instances_on_one_database(self, api, settings, clock):
        key_id = str(uuid.uuid4())
        await partner_reveal(api, key_id)
        async with running_app(settings, clock) as other_instance:
            await partner_reveal(other_instance, key_id)
            body = (await partner_reveal(other_instance, key_id)).json()
        assert body["errors"][0]["extensions"]["code"] == "RATE_LIMITED"


# -- admin mutations ------------------------------------------------------------------------


class TestAdminMutations:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_ADMIN": "2/minute"}

    async def test_an_admin_past_the_limit_gets_rate_limited_and_others_do_not(self, api, clock):
        ada = await api.admin()
        bob = await api.admin("bob@uni.example")
        for n in range(2):
            assert (await api.create_key(ada, name=f"k{n}"))["__typename"] == "ApiKey"
        response = await api.post(CREATE_KEY, {"input": {"name": "k3", "kind": "INSTITUTIONAL"}}, ada.token)
        assert response.json()["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 60}
        assert response.headers["retry-after"] == "60"
        assert (await api.create_key(bob, name="b1"))["__typename"] == "ApiKey"
        clock.advance(seconds=60)
        assert (await api.create_key(ada, name="k4"))["__typename"] == "ApiKey"

    async def test_queries_are_not_counted(self, api):
        ada = await api.admin()
        for _ in range(5):
            await api.data("{ me { email } }", token=ada.token)
        assert (await api.create_key(ada))["__typename"] == "ApiKey"


class TestAdminQueries:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_STORE": "database", "KEYRELEASE_RATE_LIMIT_ADMIN_QUERY": "3/minute"}

    async def test_an_admin_past_the_query_limit_gets_rate_limited_and_others_do_not(self, api, clock):
        ada = await api.admin()
        bob = await api.admin("bob@uni.example")
        for _ in range(3):
            await api.data("{ me { email } }", token=ada.token)
        clock.advance(seconds=15)
        response = await api.post("{ me { email } }", token=ada.token)
        assert response.status_code == 200
        assert response.json()["errors"][0]["extensions"] == {"code": "RATE_LIMITED", "retryAfter": 45}
        assert response.headers["retry-after"] == "45"
        assert (await api.data("{ me { email } }", token=bob.token))["me"]["email"] == bob.email
        clock.advance(seconds=45)
        assert (await api.data("{ me { email } }", token=ada.token))["me"]["email"] == ada.email

    async def test_a_request_counts_once_whatever_its_fields_and_aliases(self, api):
        ada = await api.admin()
        many = "{ me { email } " + " ".join(f"k{n}: keys(first: 1) {{ edges {{ cursor }} }}" for n in range(19)) + " }"
        for _ in range(3):
            await api.data(many, token=ada.token)
        body = await api.gql(many, token=ada.token)
        assert body["data"] is None
        assert {e["extensions"]["code"] for e in body["errors"]} == {"RATE_LIMITED"}

    async def test_parallel_queries_get_exactly_the_limit(self, api):
        ada = await api.admin()
        answers = await asyncio.gather(*(api.gql("{ me { email } }", token=ada.token) for _ in range(12)))
        assert sum("errors" not in a for a in answers) == 3
        assert await RateLimitCounter.filter(bucket=f"admin_query:{(await Admin.get(email=ada.email)).id}").count() == 1

    async def test_mutations_do_not_spend_the_query_budget(self, api):
        ada = await api.admin()
        for n in range(4):
            assert (await api.create_key(ada, name=f"k{n}"))["__typename"] == "ApiKey"
        for _ in range(3):
            await api.data("{ me { email } }", token=ada.token)

    async def test_an_unauthenticated_query_is_refused_without_being_counted(self, api):
        for _ in range(5):
            body = await api.gql("{ me { email } }")
            assert body["errors"][0]["extensions"]["code"] == "UNAUTHENTICATED"
        assert await RateLimitCounter.filter(bucket__startswith="admin_query:").count() == 0


class TestMemoryStore:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_STORE": "memory", "KEYRELEASE_RATE_LIMIT_TOKEN_CLIENT": "1/minute"}

    async def test_counts_in_process_memory_and_not_in_the_database(self, client):
        client_id = unknown_client()
        assert (await request_token(client, client_id, "x")).status_code == 401
        assert (await request_token(client, client_id, "x")).status_code == 429
        assert await RateLimitCounter.all().count() == 0


class TestLimitsOff:
    @pytest.fixture
    def env_overrides(self):
        return {
            "KEYRELEASE_RATE_LIMIT_STORE": "database",
            "KEYRELEASE_RATE_LIMIT_TOKEN_CLIENT": "off",
            "KEYRELEASE_RATE_LIMIT_TOKEN_IP": "off",
        }

    async def test_nothing_is_counted(self, client):
        for _ in range(3):
            assert (await request_token(client, unknown_client(), "x")).status_code == 401
        assert await RateLimitCounter.all().count() == 0


class TestPrune:
    @pytest.fixture
    def env_overrides(self):
        return {"KEYRELEASE_RATE_LIMIT_STORE": "database"}

    async def test_prune_forgets_counters_of_ended_windows(self, app, client, clock):
        await request_token(client, unknown_client(), "x")
        assert await RateLimitCounter.all().count() == 2
        assert await app.state.services.limiter.prune() == 0
        clock.advance(seconds=61)
        assert await app.state.services.limiter.prune() == 2
        assert await RateLimitCounter.all().count() == 0


def test_counters_live_in_memory_on_sqlite_and_in_the_database_on_postgresql(tmp_path):
    def settings(**env: str) -> Settings:
        return Settings.from_env(base_env(tmp_path, **env))

    assert settings().rate_limits_in_memory
    assert not settings(KEYRELEASE_DATABASE_URL="postgres://u@db.example/k").rate_limits_in_memory
    assert not settings(KEYRELEASE_RATE_LIMIT_STORE="database").rate_limits_in_memory
    assert settings(KEYRELEASE_DATABASE_URL="postgres://u@db.example/k", KEYRELEASE_RATE_LIMIT_STORE="memory").rate_limits_in_memory



async def test_the_memory_store_counts_per_window_and_prunes():
    from keyrelease.service.ratelimit import MemoryCounterStore

    store = MemoryCounterStore()
    assert await store.hit([("a", 60), ("b", 60)]) == {"a": 1, "b": 1}
    assert await store.hit([("a", 60)]) == {"a": 2}
    assert await store.hit([("a", 120)]) == {"a": 1}  # a new window
    assert await store.hit([("a", 60)]) == {"a": 2}  # a clock behind counts in the newer window
    assert await store.prune(100) == 1  # "b" ended at 60

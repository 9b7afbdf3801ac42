"""What an admin's budget says when it refuses, and what it leaves behind: the retry moment
rounded up to the next whole second (never a moment still refused), the refusal counted by
rule, and on suspension one alert per admin of the institution carrying who, where, how many
keys, until when and how long the alert stays worth sending, plus one warning in the log."""

from __future__ import annotations

import logging
import uuid
from datetime import datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from keyrelease.codes import verification_code
from keyrelease.models import MessageKind, OutboxMessage
from keyrelease.testing.settings import SECRET_KEY

CREATE = """
mutation($input: CreateKeyInput!) {
  createKey(input: $input) {
    __typename
    ... on ApiKey { id }
    ... on DailyKeyLimitError { limit retryAt }
    ... on CodeEmailLimitError { limit retryAt }
    ... on KeyCreationSuspendedError { limit lockedKeys retryAt }
  }
}"""
VERIFY = "mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { __typename } }"


def refusals(rule: str) -> float:
    return REGISTRY.get_sample_value("keyrelease_admin_budget_refusals_total", {"rule": rule}) or 0.0


def suspensions() -> float:
    return REGISTRY.get_sample_value("keyrelease_key_creation_suspensions_total") or 0.0


async def create(api, admin, name: str = "budget") -> dict:
    return (await api.data(CREATE, {"input": {"name": name, "kind": "INSTITUTIONAL"}}, admin.token))["createKey"]


def wrong_code(key_id: str) -> str:
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), 0)
    return f"{(int(right) + 1) % 1_000_000:06d}"


@pytest.mark.parametrize(
    "env_overrides", [{"KEYRELEASE_MAX_KEYS_PER_ADMIN_PER_DAY": "1", "KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR": "100"}]
)
async def test_a_daily_refusal_retries_at_the_next_whole_second_and_is_counted_by_rule(api, clock):
    clock.advance(seconds=0.25)  # the key is created a quarter second past a whole second
    created_at = clock.now()
    ada = await api.admin()
    assert (await create(api, ada))["__typename"] == "ApiKey"
    before = {rule: refusals(rule) for rule in ("KEY_CREATED", "CODE_EMAIL", "KEY_LOCKED")}
    refused = await create(api, ada)
    assert refused["__typename"] == "DailyKeyLimitError"
    reopens = created_at + timedelta(hours=24, minutes=15)
    assert datetime.fromisoformat(refused["retryAt"]) == reopens.replace(microsecond=0) + timedelta(seconds=1)
    after = {rule: refusals(rule) for rule in before}
    assert {rule: after[rule] - before[rule] for rule in before} == {"KEY_CREATED": 1, "CODE_EMAIL": 0, "KEY_LOCKED": 0}


async def test_a_suspension_alerts_each_admin_with_its_details_and_logs_one_warning(api, clock, caplog):
    ada = await api.admin("ada@uni.example", "Example University")
    bob = await api.admin("bob@uni.example", "Example University")
    clock.advance(seconds=0.5)
    first_lock = None
    suspended_before = suspensions()
    with caplog.at_level(logging.WARNING, logger="keyrelease.keys"):
        for i in range(3):
            key = await create(api, ada, f"guessed {i}")
            for _ in range(5):
                answer = await api.data(VERIFY, {"input": {"keyId": key["id"], "code": wrong_code(key["id"])}}, ada.token)
                assert answer["verifyKey"]["__typename"] == "VerificationError"
            first_lock = first_lock or clock.now()
            last_lock = clock.now()
            clock.advance(minutes=2)
    until = (first_lock + timedelta(hours=24)).replace(microsecond=0) + timedelta(seconds=1)

    alerts = await OutboxMessage.filter(kind=MessageKind.CREATION_SUSPENDED)
    assert sorted(a.recipient for a in alerts) == [ada.email, bob.email]
    for alert in alerts:
        assert alert.payload == {
            "admin_email": "ada@uni.example",
            "admin_name": "Ada",
            "institution_name": "Example University",
            "locked_keys": 3,
            "suspended_until": until.isoformat(),
            "expires_at": (last_lock + timedelta(days=7)).isoformat(),
        }
        assert alert.created_at == last_lock
    assert suspensions() - suspended_before == 1

    warnings = [r for r in caplog.records if r.name == "keyrelease.keys" and r.levelno == logging.WARNING]
    admin_id = (await api.data("{ me { id } }", token=ada.token))["me"]["id"]
    assert [r.getMessage() for r in warnings] == [
        f"admin {admin_id}: key creation suspended until {until.isoformat()} after 3 keys locked by wrong codes "
        "in 24 hours; 2 admin(s) of the institution mailed"
    ]
    refused = await create(api, ada)
    assert (refused["__typename"], refused["lockedKeys"]) == ("KeyCreationSuspendedError", 3)
    assert datetime.fromisoformat(refused["retryAt"]) == until

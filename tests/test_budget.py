"""An admin's budget: keys created per 24 hours, code emails per hour, and creation suspended
after three keys locked by wrong codes, whatever the order of operations, under parallel
requests, with rolling windows that reopen exactly when the oldest entry leaves them.

Through the real HTTP stack (GraphQL over the ASGI app, with its lifespan and mail
dispatcher), on SQLite and, when configured, PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import datetime, timedelta

import pytest

from keyrelease.codes import verification_code
from keyrelease.models import AdminBudgetEntry, ApiKey, MessageKind, OutboxMessage
from keyrelease.testing.api import REVOKE_KEY, AdminUser, Api
from keyrelease.testing.settings import SECRET_KEY

CREATE = """
mutation($input: CreateKeyInput!) {
  createKey(input: $input) {
    __typename
    ... on ApiKey { id }
    ... on Error { message }
    ... on DailyKeyLimitError { limit retryAt }
    ... on CodeEmailLimitError { limit retryAt }
    ... on KeyCreationSuspendedError { limit lockedKeys retryAt }
  }
}"""
RESEND = """
mutation($input: ResendCodeInput!) {
  resendCode(input: $input) {
    __typename
    ... on ApiKey { id resendsRemaining }
    ... on Error { message }
    ... on CodeEmailLimitError { limit retryAt }
  }
}"""
VERIFY = "mutation($input: VerifyKeyInput!) { verifyKey(input: $input) { __typename } }"
RESENDS_LEFT = "query($id: ID!) { key(id: $id) { resendsRemaining } }"


async def create(api: Api, admin: AdminUser, name: str = "budget") -> dict:
    data = await api.data(CREATE, {"input": {"name": name, "kind": "INSTITUTIONAL"}}, admin.token)
    return data["createKey"]


async def resend(api: Api, admin: AdminUser, key_id: str) -> dict:
    return (await api.data(RESEND, {"input": {"keyId": key_id}}, admin.token))["resendCode"]


async def revoke(api: Api, admin: AdminUser, key_id: str) -> None:
    result = (await api.data(REVOKE_KEY, {"input": {"keyId": key_id}}, admin.token))["revokeKey"]
    assert result["__typename"] == "ApiKey", result


def wrong_code(key_id: str, generation: int = 0) -> str:
    right = verification_code(SECRET_KEY.encode(), uuid.UUID(key_id), generation)
    return f"{(int(right) + 1) % 1_000_000:06d}"


async def guess_wrong(api: Api, admin: AdminUser, key_id: str, times: int) -> None:
    for _ in range(times):
        result = (await api.data(VERIFY, {"input": {"keyId": key_id, "code": wrong_code(key_id)}}, admin.token))
        assert result["verifyKey"]["__typename"] == "VerificationError"


def moment(text: str) -> datetime:
    return datetime.fromisoformat(text)


async def code_emails_to(address: str) -> int:
    return await OutboxMessage.filter(recipient=address, kind=MessageKind.VERIFICATION_CODE).count()


async def suspension_alerts() -> Counter:
    rows = await OutboxMessage.filter(kind=MessageKind.CREATION_SUSPENDED).values_list("recipient", flat=True)
    return Counter(rows)


# -- keys per day ------------------------------------------------------------------------


@pytest.mark.parametrize("env_overrides", [{"KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR": "1000"}])
async def test_revoke_then_create_stops_at_twenty_keys_a_day(api, clock):
    admin = await api.admin()
    start = clock.now()
    outcomes = []
    for i in range(30):
        result = await create(api, admin, f"loop {i}")
        outcomes.append(result["__typename"])
        if result["__typename"] != "ApiKey":
            break
        await revoke(api, admin, result["id"])
        clock.advance(seconds=5)
    assert outcomes == ["ApiKey"] * 20 + ["DailyKeyLimitError"]
    assert result["limit"] == 20
    assert moment(result["retryAt"]) == start + DAY
    assert "20 keys in the last day" in result["message"]
    assert await code_emails_to(admin.email) == 20
    assert await ApiKey.filter(notify_email=admin.email).count() == 20


#: The daily key window: 24 hours plus the verification window (15 minutes by default), so that
#: every key guessable within any 24 hours was created within one window.
DAY = timedelta(hours=24, minutes=15)


async def test_the_daily_key_window_rolls_and_reopens_when_the_oldest_key_is_a_day_and_a_window_old(api, clock):
    admin = await api.admin()
    start = clock.now()
    for i in range(20):  # one key an hour: 20 keys from start to start + 19 h
        result = await create(api, admin, f"hourly {i}")
        assert result["__typename"] == "ApiKey", result
        await revoke(api, admin, result["id"])
        clock.advance(hours=1)
    refused = await create(api, admin)
    assert refused["__typename"] == "DailyKeyLimitError"
    assert moment(refused["retryAt"]) == start + DAY

    clock.advance(hours=4, minutes=15, seconds=-1)  # start + 24 h 15 min - 1 s: the first key still counts
    assert (await create(api, admin))["__typename"] == "DailyKeyLimitError"
    clock.advance(seconds=1)  # start + 24 h 15 min: it no longer does
    reopened = await create(api, admin)
    assert reopened["__typename"] == "ApiKey", reopened
    await revoke(api, admin, reopened["id"])
    again = await create(api, admin)  # a rolling window: the key of start + 1 h is next to leave
    assert again["__typename"] == "DailyKeyLimitError"
    assert moment(again["retryAt"]) == start + timedelta(hours=1) + DAY


# -- keys locked by wrong codes ------------------------------------------------------------


async def test_three_keys_locked_by_wrong_codes_suspend_creation_and_tell_every_admin_once(api, clock):
    ada = await api.admin("ada@uni.example", "Example University")
    bob = await api.admin("bob@uni.example", "Example University")
    eve = await api.admin("eve@other.example", "Other College")
    lock_times = []
    for i in range(3):
        key = await create(api, ada, f"guessed {i}")
        assert key["__typename"] == "ApiKey", key
        await guess_wrong(api, ada, key["id"], 5)
        lock_times.append(clock.now())
        clock.advance(minutes=2)

    refused = await create(api, ada)
    assert refused["__typename"] == "KeyCreationSuspendedError"
    assert (refused["limit"], refused["lockedKeys"]) == (3, 3)
    assert moment(refused["retryAt"]) == lock_times[0] + timedelta(hours=24)
    assert "every admin of your institution has been told" in refused["message"]
    assert await code_emails_to(ada.email) == 3, "a refused createKey sends no code"

    assert await suspension_alerts() == {"ada@uni.example": 1, "bob@uni.example": 1}
    for admin in (ada, bob):
        [alert] = await api.mailbox.wait_for(lambda m, a=admin: m.to == a.email and "suspended" in m.subject)
        assert "ada@uni.example" in alert.subject
        assert "3 keys created with that account were locked" in alert.text
        assert (lock_times[0] + timedelta(hours=24)).strftime("%Y-%m-%d %H:%M:%S") in alert.text
    assert not [m for m in api.mailbox.messages if m.to == eve.email]

    assert (await create(api, bob))["__typename"] == "ApiKey", "a colleague is not suspended"
    clock.advance(seconds=(moment(refused["retryAt"]) - clock.now()).total_seconds() - 1)
    assert (await create(api, ada))["__typename"] == "KeyCreationSuspendedError"
    clock.advance(seconds=1)
    assert (await create(api, ada))["__typename"] == "ApiKey", "the first lock has left the window"


async def test_locks_landing_in_parallel_mail_each_admin_of_the_institution_once(api, clock):
    ada = await api.admin("ada@uni.example", "Example University")
    bob = await api.admin("bob@uni.example", "Example University")
    keys = [await create(api, ada, f"parallel {i}") for i in range(5)]
    for key in keys:
        await guess_wrong(api, ada, key["id"], 4)
    # The fifth wrong code for all five keys at once: five locks, one of them the third.
    results = await asyncio.gather(
        *(api.data(VERIFY, {"input": {"keyId": k["id"], "code": wrong_code(k["id"])}}, ada.token) for k in keys)
    )
    assert {r["verifyKey"]["__typename"] for r in results} == {"VerificationError"}
    assert await ApiKey.filter(notify_email=ada.email, lock_reason="ATTEMPTS").count() == 5
    assert await suspension_alerts() == {ada.email: 1, bob.email: 1}
    refused = await create(api, ada)
    assert refused["__typename"] == "KeyCreationSuspendedError"
    assert refused["lockedKeys"] == 5


async def test_keys_that_lock_at_the_end_of_their_window_do_not_suspend_creation(api, clock):
    admin = await api.admin()
    for i in range(4):
        key = await create(api, admin, f"lapsed {i}")
        assert key["__typename"] == "ApiKey", key
        await guess_wrong(api, admin, key["id"], 4)
        clock.advance(minutes=16)  # the window closes: LOCKED, but not by wrong codes
        await guess_wrong(api, admin, key["id"], 1)  # a late guess has the lock recorded (WINDOW)
    assert await ApiKey.filter(notify_email=admin.email, lock_reason="WINDOW").count() == 4
    assert (await create(api, admin))["__typename"] == "ApiKey"
    assert await suspension_alerts() == {}


# -- code emails per hour ------------------------------------------------------------------


async def test_code_emails_are_capped_per_hour_creates_and_resends_together(api, clock):
    ada = await api.admin("ada@uni.example", "Example University")
    start = clock.now()
    keys = []
    for i in range(5):
        keys.append((await create(api, ada, f"mailed {i}"))["id"])
        clock.advance(seconds=30)
    for key_id in (keys[0], keys[0], keys[0], keys[1], keys[1]):
        assert (await resend(api, ada, key_id))["__typename"] == "ApiKey"
        clock.advance(seconds=30)

    refused = await resend(api, ada, keys[1])
    assert refused["__typename"] == "CodeEmailLimitError"
    assert refused["limit"] == 10
    assert moment(refused["retryAt"]) == start + timedelta(hours=1)
    assert "10 verification codes have been emailed to you in the last hour" in refused["message"]
    left = await api.data(RESENDS_LEFT, {"id": keys[1]}, ada.token)
    assert left["key"]["resendsRemaining"] == 1, "a refused resend uses nothing up"
    assert (await create(api, ada))["__typename"] == "CodeEmailLimitError"
    assert await code_emails_to(ada.email) == 10

    # Any other failed resend is still the one generic error.
    assert (await resend(api, ada, keys[0]))["__typename"] == "VerificationError"  # its resends are spent
    assert (await resend(api, ada, str(uuid.uuid4())))["__typename"] == "VerificationError"
    bob = await api.admin("bob@uni.example", "Example University")
    assert (await resend(api, bob, keys[2]))["__typename"] == "VerificationError"

    clock.advance(seconds=(start + timedelta(hours=1) - clock.now()).total_seconds() - 1)
    assert (await create(api, ada))["__typename"] == "CodeEmailLimitError"
    clock.advance(seconds=1)
    assert (await create(api, ada))["__typename"] == "ApiKey", "the first code email has left the hour"
    again = await create(api, ada)
    assert again["__typename"] == "CodeEmailLimitError"
    assert moment(again["retryAt"]) == start + timedelta(hours=1, seconds=30)


# -- parallel requests ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("env_overrides", "allowed", "refusal"),
    [
        (
            {"KEYRELEASE_MAX_PENDING_KEYS_PER_ADMIN": "100", "KEYRELEASE_MAX_CODE_EMAILS_PER_ADMIN_PER_HOUR": "1000"},
            20,
            "DailyKeyLimitError",
        ),
        ({"KEYRELEASE_MAX_PENDING_KEYS_PER_ADMIN": "100"}, 10, "CodeEmailLimitError"),
    ],
    ids=["keys-per-day", "code-emails-per-hour"],
)
async def test_parallel_creates_never_exceed_the_budget(api, allowed, refusal):
    admin = await api.admin()
    results = await asyncio.gather(*(create(api, admin, f"burst {i}") for i in range(40)))
    assert Counter(r["__typename"] for r in results) == {"ApiKey": allowed, refusal: 40 - allowed}
    assert await ApiKey.filter(notify_email=admin.email).count() == allowed
    assert await code_emails_to(admin.email) == allowed
    assert await AdminBudgetEntry.filter(item="KEY_CREATED").count() == allowed

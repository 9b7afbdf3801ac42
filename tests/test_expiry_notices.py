"""Expiry notices: a key about to expire is announced at each threshold still ahead when it was
verified, each once, to its creating admin (and a partner key's partner), through the outbox.

The clock is moved, never waited for; each pass is the one the background loop runs
(``services.notices.send_due``), on the real database.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta

import pytest

from keyrelease import expiry
from keyrelease.config import Settings
from keyrelease.exceptions import ConfigError
from keyrelease.models import ExpiryNotice, MessageKind, NoticeOutcome, OutboxMessage
from keyrelease.service.offboarding import disable_admin
from keyrelease.testing.api import CODE_LINE, released_key
from keyrelease.testing.settings import base_env

DAY = timedelta(days=1)
HISTORY = "query($id: ID!) { key(id: $id) { events { type detail } } }"


async def expiring_key(api, clock, admin, days: float, **fields):
    """A released key expiring ``days`` after now."""
    expires = clock.now() + timedelta(days=days)
    key, creds = await released_key(api, admin, expiresAt=expires.isoformat(), **fields)
    return key, creds


async def notices_pass(app) -> int:
    """One pass of the background loop: how many notices it sent."""
    return await app.state.services.notices.send_due()


async def notices(api, address: str, count: int) -> list:
    """The expiry notices delivered to ``address``, once ``count`` have arrived."""
    return await api.mailbox.wait_for(lambda m: m.to == address and "expires on" in m.subject, count=count)


async def queued(address: str | None = None) -> int:
    """Expiry notices in the outbox (to ``address``)."""
    rows = OutboxMessage.filter(kind=MessageKind.EXPIRY_NOTICE)
    return await (rows.filter(recipient=address) if address else rows).count()


async def history(api, admin, key_id) -> list[str]:
    events = (await api.data(HISTORY, {"id": key_id}, admin.token))["key"]["events"]
    return [e["detail"] for e in events if e["type"] == "EXPIRY_NOTICE"]


async def test_each_threshold_is_noticed_once_as_it_is_crossed(api, app, clock):
    admin = await api.admin()
    expires = clock.now() + 40 * DAY
    key, _ = await expiring_key(api, clock, admin, 40, name="Nightly export")
    assert await notices_pass(app) == 0
    for days_left in (30, 14, 7, 1):
        clock.advance((expires - days_left * DAY - clock.now()).total_seconds() - 1)
        assert await notices_pass(app) == 0, f"{days_left}d a second early"
        clock.advance(seconds=1)
        assert await notices_pass(app) == 1, f"{days_left}d"
        clock.advance(seconds=30)
        assert await notices_pass(app) == 0, f"{days_left}d twice"
    assert await history(api, admin, key["id"]) == ["30d", "14d", "7d", "1d"]
    mails = await notices(api, admin.email, 4)
    assert len(mails) == 4 and await queued() == 4
    assert [re.search(r"less than (\S+):", m.text).group(1) for m in mails] == ["30d", "14d", "7d", "1d"]


async def test_the_mail_names_the_key_its_client_id_the_expiry_and_how_to_renew(api, app, clock):
    admin = await api.admin()
    key, creds = await expiring_key(api, clock, admin, 20, name="Billing sync")
    expires = (clock.now() + 20 * DAY).strftime("%Y-%m-%dT%H:%M:%SZ")
    clock.advance(days=7)
    assert await notices_pass(app) == 1
    [mail] = await notices(api, admin.email, 1)
    assert "“Billing sync”" in mail.subject and expires in mail.subject
    for part in (mail.text, mail.html):
        assert "Billing sync" in part and creds["clientId"] in part and expires in part
        assert "rotate the key with a new expiry date" in part
        assert creds["clientSecret"] not in part


async def test_a_partner_key_notice_goes_to_the_admin_and_the_partner(api, app, clock):
    admin = await api.admin()
    key = await api.create_key(
        admin, name="Partner feed", kind="PARTNER", partnerName="Acme", partnerEmail="ops@acme.example",
        expiresAt=(clock.now() + 10 * DAY).isoformat(),
    )
    code = await api.code_for(admin)
    assert (await api.verify(admin, key["id"], code))["status"] == "ACTIVE"
    otp = await api.otp_for("ops@acme.example")
    clock.advance(days=3, seconds=1)
    assert await notices_pass(app) == 1
    [to_admin] = await notices(api, admin.email, 1)
    [to_partner] = await notices(api, "ops@acme.example", 1)
    assert "rotate the key with a new expiry date" in to_admin.text
    assert "contact the admin at Example University" in to_partner.text and "ask them to renew it" in to_partner.text
    assert otp not in to_partner.text and otp not in to_admin.text
    assert await history(api, admin, key["id"]) == ["7d"]


async def test_a_key_verified_ten_days_before_expiry_gets_only_the_thresholds_still_ahead(api, app, clock):
    admin = await api.admin()
    key, _ = await expiring_key(api, clock, admin, 10)
    clock.advance(seconds=30)
    assert await notices_pass(app) == 0, "30d and 14d were already behind at verification"
    clock.advance(days=3)
    assert await notices_pass(app) == 1
    clock.advance(days=6)
    assert await notices_pass(app) == 1
    clock.advance(days=1)
    assert await notices_pass(app) == 0
    assert await history(api, admin, key["id"]) == ["7d", "1d"]
    outcomes = dict(await ExpiryNotice.filter(key_id=key["id"]).values_list("threshold_seconds", "outcome"))
    assert outcomes == {
        30 * 86400: NoticeOutcome.NOT_AHEAD, 14 * 86400: NoticeOutcome.NOT_AHEAD,
        7 * 86400: NoticeOutcome.SENT, 86400: NoticeOutcome.SENT,
    }


async def test_a_disabled_creators_key_is_announced_to_the_institutions_other_admins(api, app, clock):
    ada = await api.admin("ada@uni.example")
    bob = await api.admin("bob@uni.example")
    gone = await api.admin("gone@uni.example")
    key, _ = await expiring_key(api, clock, gone, 10, name="Offboarded owner's key")
    await disable_admin(clock, "gone@uni.example")
    clock.advance(days=3, seconds=1)
    assert await notices_pass(app) == 1
    assert len(await notices(api, ada.email, 1)) == 1 and len(await notices(api, bob.email, 1)) == 1
    assert await queued("gone@uni.example") == 0 and await queued() == 2
    assert await history(api, ada, key["id"]) == ["7d"]


async def test_revoked_keys_get_no_notice(api, app, clock):
    admin = await api.admin()
    key, _ = await expiring_key(api, clock, admin, 20)
    revoked = await api.data(
        "mutation($i: RevokeKeyInput!) { revokeKey(input: $i) { __typename } }", {"i": {"keyId": key["id"]}}, admin.token
    )
    assert revoked["revokeKey"]["__typename"] == "ApiKey"
    for _ in range(20):
        clock.advance(days=1)
        assert await notices_pass(app) == 0
    assert await queued() == 0 and await history(api, admin, key["id"]) == []


async def test_after_a_late_start_only_the_nearest_threshold_is_sent_and_the_others_never(api, app, clock):
    admin = await api.admin()
    key, _ = await expiring_key(api, clock, admin, 40)
    clock.advance(days=34)  # down past 30d, 14d and 7d: 6 days left
    assert await notices_pass(app) == 1
    assert await history(api, admin, key["id"]) == ["7d"]
    assert await notices_pass(app) == 0
    clock.advance(days=5, seconds=1)
    assert await notices_pass(app) == 1
    assert await history(api, admin, key["id"]) == ["7d", "1d"]
    outcomes = dict(await ExpiryNotice.filter(key_id=key["id"]).values_list("threshold_seconds", "outcome"))
    assert outcomes[30 * 86400] == outcomes[14 * 86400] == NoticeOutcome.SKIPPED


async def test_a_key_past_its_expiry_gets_nothing(api, app, clock):
    admin = await api.admin()
    await expiring_key(api, clock, admin, 3)
    clock.advance(days=3)
    assert await notices_pass(app) == 0
    assert await queued() == 0


async def test_parallel_passes_send_each_notice_once(api, app, clock):
    admin = await api.admin()
    keys = [await expiring_key(api, clock, admin, 20, name=f"parallel {i}") for i in range(5)]
    clock.advance(days=6, seconds=1)
    services = app.state.services
    sent = await asyncio.gather(*(services.notices.send_due() for _ in range(4)))
    assert sum(sent) == 5
    assert await queued(admin.email) == 5
    for key, _ in keys:
        assert await history(api, admin, key["id"]) == ["14d"]


class TestConfiguredThresholds:
    @pytest.fixture
    def env_overrides(self) -> dict[str, str]:
        return {"KEYRELEASE_EXPIRY_NOTICES": "36h,7d"}

    async def test_the_policy_states_the_thresholds_largest_first(self, api):
        admin = await api.admin()
        policy = (await api.data("{ policy { expiryNotices } }", token=admin.token))["policy"]
        assert policy == {"expiryNotices": ["7d", "36h"]}

    async def test_notices_follow_the_configured_thresholds(self, api, app, clock):
        admin = await api.admin()
        key, _ = await expiring_key(api, clock, admin, 20)
        clock.advance(days=13, seconds=1)  # 7 days left: not 14d, which is not configured
        assert await notices_pass(app) == 1
        clock.advance(days=5, hours=12)  # 36 hours left
        assert await notices_pass(app) == 1
        assert await history(api, admin, key["id"]) == ["7d", "36h"]


# --- the setting ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("30d,14d,7d,1d", ("30d", "14d", "7d", "1d")),
        ("1d, 7d ,30d", ("30d", "7d", "1d")),
        ("90m,2h", ("2h", "90m")),
        ("48h", ("2d",)),
    ],
)
def test_expiry_notices_setting_reads_durations_largest_first(tmp_path, raw, expected):
    settings = Settings.from_env(base_env(tmp_path, KEYRELEASE_EXPIRY_NOTICES=raw))
    assert tuple(map(expiry.format_duration, settings.expiry_notices)) == expected


def test_expiry_notices_setting_defaults_to_thirty_fourteen_seven_and_one_day(tmp_path):
    settings = Settings.from_env(base_env(tmp_path))
    assert settings.expiry_notices == (30 * DAY, 14 * DAY, 7 * DAY, DAY)


@pytest.mark.parametrize(
    ("raw", "problem"),
    [
        ("30d,,7d", "has an empty item"),
        ("30d,", "has an empty item"),
        ("14w", "unknown unit 'w'"),
        ("14", "is not a duration"),
        ("1.5d", "is not a duration"),
        ("-1d", "is not a duration"),
        ("0d", "is zero"),
        ("7d,168h", "gives 7d twice"),
        ("7d,7d", "gives 7d twice"),
    ],
)
def test_expiry_notices_setting_refuses_bad_values_naming_the_variable(tmp_path, raw, problem):
    with pytest.raises(ConfigError) as caught:
        Settings.from_env(base_env(tmp_path, KEYRELEASE_EXPIRY_NOTICES=raw))
    assert str(caught.value).startswith("KEYRELEASE_EXPIRY_NOTICES: ")
    assert problem in str(caught.value)


# --- keys(expiringWithin:) --------------------------------------------------------------------

EXPIRING = "query($w: String) { keys(expiringWithin: $w) { edges { node { name status expiresAt } } } }"


async def test_keys_expiring_within_lists_the_usable_keys_expiring_in_time(api, clock):
    admin = await api.admin()
    await expiring_key(api, clock, admin, 5, name="five days")
    await expiring_key(api, clock, admin, 13, name="thirteen days")
    await expiring_key(api, clock, admin, 20, name="twenty days")
    await released_key(api, admin, name="no expiry")
    revoked, _ = await expiring_key(api, clock, admin, 2, name="revoked")
    await api.data(
        "mutation($i: RevokeKeyInput!) { revokeKey(input: $i) { __typename } }", {"i": {"keyId": revoked["id"]}}, admin.token
    )
    pending = await api.create_key(admin, name="pending", expiresAt=(clock.now() + DAY).isoformat())
    assert pending["status"] == "PENDING_VERIFICATION"
    other = await api.admin("bob@other.example", "Other College")
    await expiring_key(api, clock, other, 1, name="another institution's")

    async def names(within: str) -> list[str]:
        edges = (await api.data(EXPIRING, {"w": within}, admin.token))["keys"]["edges"]
        assert {e["node"]["status"] for e in edges} <= {"ACTIVE"}
        return sorted(e["node"]["name"] for e in edges)  # created in the same frozen instant

    assert await names("14d") == ["five days", "thirteen days"]
    assert await names("30d") == ["five days", "thirteen days", "twenty days"]
    assert await names("120h") == ["five days"]
    assert await names("1m") == []
    clock.advance(days=5)
    assert await names("14d") == ["thirteen days"], "an expired key is not expiring"


@pytest.mark.parametrize("within", ["", "14", "14w", "0d", "soon", "-1d", "1.5d", "9999999d", "1d\n"])
async def test_keys_expiring_within_refuses_what_is_not_a_duration(api, within):
    admin = await api.admin()
    response = await api.post(EXPIRING, {"w": within}, admin.token)
    assert response.status_code == 200
    [error] = response.json()["errors"]
    assert error["extensions"]["code"] == "BAD_USER_INPUT"
    assert error["message"].startswith("expiringWithin must ")  # a duration; no control characters
    assert response.json()["data"] is None


async def test_a_key_renewed_by_rotation_is_announced_again_for_its_new_expiry(api, app, clock):
    """Renewal is a rotation with a new expiry: the notices decided about the old expiry do not
    hold back those about the new one, even while the old date is still ahead."""
    admin = await api.admin()
    key, _ = await expiring_key(api, clock, admin, 10, name="Renewed")
    clock.advance(days=3, seconds=1)
    assert await notices_pass(app) == 1  # 7d before the old expiry
    renewed_to = clock.now() + 9 * DAY  # after the old expiry, its 7d threshold two days ahead
    rotate = "mutation($i: RotateKeyInput!) { rotateKey(input: $i) { __typename } }"
    started = await api.data(rotate, {"i": {"keyId": key["id"], "expiresAt": renewed_to.isoformat()}}, admin.token)
    assert started["rotateKey"]["__typename"] == "ApiKey"
    mails = await api.mails_to(admin.email, 3)  # the key's code, the notice, the rotation's code
    code = CODE_LINE.search(mails[-1].text).group(1)
    assert (await api.verify(admin, key["id"], code))["status"] == "ACTIVE"
    assert (await api.reveal(admin, key["id"]))["__typename"] == "KeyCredentials"  # the release
    assert await notices_pass(app) == 0  # 30d and 14d were behind at verification
    clock.advance(days=2)
    assert await notices_pass(app) == 1  # 7d before the new expiry; the old one is 3 days ahead
    assert await history(api, admin, key["id"]) == ["7d", "7d"]

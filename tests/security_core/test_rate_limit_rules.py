"""The rate limiter's arithmetic, on the service layer with a frozen clock: rates as written
in settings, fixed windows aligned to the period, Retry-After to the end of the window, the
limit reached exactly at N, one bucket per rule and subject (attacker-chosen subjects hashed),
and the database and memory stores counting and pruning alike."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

import pytest

from keyrelease.clock import FrozenClock
from keyrelease.service.ratelimit import (
    DatabaseCounterStore,
    Limited,
    MemoryCounterStore,
    Rate,
    RateLimiter,
    RateLimits,
    _bucket,
)

OFF = RateLimits(token_ip=None, token_client=None, partner_ip=None, partner_key=None, admin=None)


@pytest.mark.parametrize("text", ["off", "OFF", " none ", "None", "0"])
def test_a_rate_can_be_switched_off(text):
    assert Rate.parse(text) is None


@pytest.mark.parametrize(
    ("text", "rate"),
    [("1/second", Rate(1, 1)), ("10/MINUTE", Rate(10, 60)), ("3 / hour", Rate(3, 3600)), ("500/day", Rate(500, 86400))],
)
def test_a_rate_reads_and_prints_as_written(text, rate):
    assert Rate.parse(text) == rate
    assert str(rate) == text.replace(" ", "").lower()


@pytest.mark.parametrize("text", ["0/minute", "-1/minute", "10/week", "10 per minute", "minute", ""])
def test_a_bad_rate_says_what_is_allowed(text):
    with pytest.raises(ValueError) as raised:
        Rate.parse(text)
    assert str(raised.value) == "must be N/second, N/minute, N/hour or N/day (N ≥ 1), or off"


def limiter(clock: FrozenClock, **rules: Rate | None) -> RateLimiter:
    limits = RateLimits(**{**OFF.__dict__, **rules})
    return RateLimiter(limits, MemoryCounterStore(), clock)


async def test_the_nth_request_passes_and_the_next_is_limited_until_the_window_ends():
    clock = FrozenClock(datetime(2030, 1, 1, 12, 0, 20, tzinfo=UTC))  # 20 s into a minute
    rl = limiter(clock, admin=Rate(3, 60))
    assert [await rl.admin_mutation(7) for _ in range(3)] == [None, None, None]
    assert await rl.admin_mutation(7) == Limited(rule="admin", retry_after=40)
    assert await rl.admin_mutation(8) is None  # another admin, another bucket
    clock.advance(39.5)
    assert await rl.admin_mutation(7) == Limited(rule="admin", retry_after=1)  # never 0
    clock.advance(0.5)  # the next minute
    assert await rl.admin_mutation(7) is None


async def test_windows_are_aligned_to_their_period():
    clock = FrozenClock(datetime(2030, 1, 1, 12, 59, 0, tzinfo=UTC))
    rl = limiter(clock, partner_key=Rate(1, 3600), partner_ip=Rate(100, 60))
    assert await rl.partner_reveal("192.0.2.1", "k") is None
    assert await rl.partner_reveal("192.0.2.1", "k") == Limited(rule="partner_key", retry_after=60)


async def test_the_token_endpoint_counts_per_address_and_per_address_and_client():
    clock = FrozenClock()
    rl = limiter(clock, token_ip=Rate(3, 60), token_client=Rate(2, 60))
    assert await rl.token_request("192.0.2.1", "c1") is None
    assert await rl.token_request("192.0.2.1", "c1") is None
    assert (await rl.token_request("192.0.2.1", "c1")).rule == "token_client"
    assert (await rl.token_request("192.0.2.1", None)).rule == "token_ip"  # fourth from the address
    assert await rl.token_request("192.0.2.2", "c1") is None  # the client ID alone is not limited


async def test_secret_scanning_reports_are_counted_per_address_under_their_own_rule():
    clock = FrozenClock(datetime(2030, 1, 1, 12, 0, 0, tzinfo=UTC))
    rl = limiter(clock, secret_scanning_ip=Rate(2, 60), token_ip=Rate(1, 60))
    assert await rl.token_request("192.0.2.1", None) is None  # another rule's bucket, not this one's
    assert [await rl.secret_scanning_report("192.0.2.1") for _ in range(2)] == [None, None]
    assert await rl.secret_scanning_report("192.0.2.1") == Limited(rule="secret_scanning_ip", retry_after=60)
    assert await rl.secret_scanning_report("192.0.2.2") is None


async def test_when_two_rules_refuse_the_longer_wait_is_given():
    clock = FrozenClock(datetime(2030, 1, 1, 12, 0, 50, tzinfo=UTC))
    rl = limiter(clock, partner_ip=Rate(1, 60), partner_key=Rate(1, 3600))
    await rl.partner_reveal("192.0.2.1", "k")
    assert await rl.partner_reveal("192.0.2.1", "k") == Limited(rule="partner_ip", retry_after=3550)


async def test_with_every_rule_off_nothing_is_counted():
    store = MemoryCounterStore()
    rl = RateLimiter(OFF, store, FrozenClock())
    assert await rl.token_request("192.0.2.1", "c") is None and await rl.admin_mutation(1) is None
    assert store._counters == {}


def test_a_bucket_is_rule_and_subject_and_an_odd_subject_is_hashed():
    assert _bucket("token_ip", "192.0.2.1") == "token_ip:192.0.2.1"
    assert _bucket("token_ip", "x" * 100) == "token_ip:" + "x" * 100
    long = "x" * 101
    assert _bucket("token_ip", long) == "token_ip:sha256=" + hashlib.sha256(long.encode()).hexdigest()
    odd = "a\nb"
    assert _bucket("partner_key", odd) == "partner_key:sha256=" + hashlib.sha256(odd.encode()).hexdigest()
    surrogate = "\udcff"
    assert _bucket("r", surrogate) == "r:sha256=" + hashlib.sha256(surrogate.encode("utf-8", "surrogatepass")).hexdigest()


@pytest.mark.parametrize("store_type", [DatabaseCounterStore, MemoryCounterStore])
async def test_both_stores_count_per_window_and_prune_ended_windows(app, store_type):
    store = store_type()
    assert await store.hit([("a", 60), ("b", 60)]) == {"a": 1, "b": 1}
    assert await store.hit([("a", 60)]) == {"a": 2}
    assert await store.hit([("a", 120)]) == {"a": 1}  # a new window
    assert await store.hit([("a", 60)]) == {"a": 2}  # a clock behind counts in the newer window
    assert await store.prune(60) == 0  # "b" ends at 60: not yet ended
    assert await store.prune(61) == 1
    assert await store.hit([("b", 120)]) == {"b": 1}

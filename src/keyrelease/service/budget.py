"""An admin's budget: keys created, codes emailed, keys locked by wrong codes, each counted in a
rolling window.

The pending-key cap bounds how many keys wait *at once*; a revoked or locked key stops
waiting, so on its own it bounds neither mail nor guesses (revoke → create, or create → five
wrong codes → create, as often as the mutation rate limit allows). The budget bounds them per
admin whatever the order of operations (the arithmetic is in docs/security.md):

* ``KEY_CREATED``: at most ``max_keys_per_admin_per_day`` in any 24 hours *plus one
  verification window* (24 h 15 min by default), whatever became of the keys. The extra
  window is what makes the guess bound hold for every 24-hour stretch, not only on average: a
  key takes guesses for up to one verification window after it is created, so the keys that
  can be guessed in any 24 hours were all created within 24 hours plus that window;
* ``CODE_EMAIL`` (a createKey or a resendCode): at most ``max_code_emails_per_admin_per_hour``
  in any hour;
* ``KEY_LOCKED`` (a key of theirs locked by failed attempts): once there are
  ``max_locked_keys_per_admin_per_day`` in 24 hours, createKey is refused until the oldest of
  them is 24 hours old, and the transaction that records the lock reaching that number mails
  every admin of the institution.

How it holds under parallel requests, in any number of processes and instances:

* every transaction that spends or records budget first takes the admin's row lock
  (:func:`hold`: a row lock on PostgreSQL; on SQLite the transaction's ``BEGIN IMMEDIATE``
  already holds the database's single write lock), so one admin's budget changes one
  transaction at a time. Other admins never wait for it;
* spending is **one** conditional insert whose WHERE clause states the whole rule (for each
  rule, the count of its entries with ``at_ms > now - window`` is below the limit;
  :func:`keyrelease.db.fastpath.spend_budget`), and its row count decides. It runs after the
  lock is held, and PostgreSQL (READ COMMITTED) takes a new snapshot per statement, so the
  count sees every entry committed before: without the lock two parallel statements could
  both count 19 and both insert;
* the windows are exact rolling windows, not fixed buckets: an entry counts while
  ``now - window < at``, so no window of that length ever holds more than the limit, and a
  refusal says exactly when the entry that matters leaves the window.

Entries live in their own table rather than being counted off the keys, so nothing done to a
key later (revoke, lock, a purge) gives its creator the budget back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from keyrelease.db import fastpath
from keyrelease.models import Admin, AdminBudgetEntry, BudgetItem
from keyrelease.policy import VerificationPolicy

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(hours=24)
#: Entries are kept this long after the longest window has stopped counting them.
KEEP_MARGIN = HOUR


@dataclass(frozen=True)
class Rule:
    """At most ``limit`` entries of ``item`` in any ``window``."""

    item: BudgetItem
    limit: int
    window: timedelta


@dataclass(frozen=True)
class Overspent:
    """A rule the admin is at or over: ``count`` entries in the window, the next allowed at
    ``reopens_at``."""

    rule: Rule
    count: int
    reopens_at: datetime


class AdminBudget:
    def __init__(self, policy: VerificationPolicy) -> None:
        self.keys_created = Rule(
            BudgetItem.KEY_CREATED, policy.max_keys_per_admin_per_day, DAY + policy.verification_window
        )
        self.code_emails = Rule(BudgetItem.CODE_EMAIL, policy.max_code_emails_per_admin_per_hour, HOUR)
        self.keys_locked = Rule(BudgetItem.KEY_LOCKED, policy.max_locked_keys_per_admin_per_day, DAY)

    @property
    def for_create(self) -> tuple[Rule, ...]:
        """What createKey must be within: not suspended, keys per day, code emails per hour."""
        return (self.keys_locked, self.keys_created, self.code_emails)

    async def spend(
        self, admin_id: int, now: datetime, items: Sequence[BudgetItem], rules: Sequence[Rule]
    ) -> Overspent | None:
        """Record one entry of each of ``items`` if the admin is within every one of ``rules``
        (all or none); otherwise write nothing and say which rule refused (the one that
        reopens last, so its time is when the admin may really try again).

        Call inside a transaction, after :func:`hold`.
        """
        at = _ms(now)
        conditions = [fastpath.Within(rule.item.value, at - _ms_delta(rule.window), rule.limit) for rule in rules]
        if await fastpath.spend_budget(admin_id, at, [item.value for item in items], conditions):
            return None
        refused = [state for state in [await self.state(admin_id, rule, now) for rule in rules] if state is not None]
        if not refused:  # impossible while the admin's lock is held; say so loudly if it happens
            raise RuntimeError(f"budget refused admin {admin_id} but no rule is at its limit")
        return max(refused, key=lambda state: state.reopens_at)

    async def record(self, admin_id: int, item: BudgetItem, now: datetime) -> None:
        """Record an entry that cannot be refused (a lock has happened). Inside a transaction,
        after :func:`hold`."""
        await AdminBudgetEntry.create(admin_id=admin_id, item=item, at_ms=_ms(now))

    async def state(self, admin_id: int, rule: Rule, now: datetime) -> Overspent | None:
        """Where the admin stands against ``rule``: None while below the limit."""
        entries = (
            AdminBudgetEntry.filter(admin_id=admin_id, item=rule.item, at_ms__gt=_ms(now) - _ms_delta(rule.window))
            .order_by("-at_ms")
        )
        count = await entries.count()
        if count < rule.limit:
            return None
        # The window admits another entry once the limit-th most recent has left it.
        oldest_that_matters = await entries.offset(rule.limit - 1).limit(1).values_list("at_ms", flat=True)
        return Overspent(rule=rule, count=count, reopens_at=_moment(oldest_that_matters[0]) + rule.window)  # type: ignore[arg-type]  # flat values_list

    async def prune(self, now: datetime) -> int:
        """Forget entries no window can count any more; how many were removed."""
        longest = max(self.keys_created.window, self.code_emails.window, self.keys_locked.window)
        return await AdminBudgetEntry.filter(at_ms__lt=_ms(now - longest - KEEP_MARGIN)).delete()


async def hold(admin_id: int) -> None:
    """Take the admin's row lock for the rest of the transaction (PostgreSQL; a no-op on
    SQLite, whose transactions already hold the one write lock). Every transaction that
    touches the admin's budget takes it first, before any key row, so they never deadlock."""
    await Admin.select_for_update().filter(id=admin_id).only("id").first()


def _ms(moment: datetime) -> int:
    """Whole milliseconds since the epoch, exactly (no float rounding)."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def _ms_delta(window: timedelta) -> int:
    return window // timedelta(milliseconds=1)


def _moment(ms: int) -> datetime:
    return EPOCH + timedelta(milliseconds=ms)

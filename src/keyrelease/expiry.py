"""Expiry notices, the pure part: durations such as ``14d`` and which notice a key is due.

A key with an expiry gets a notice at each threshold of ``KEYRELEASE_EXPIRY_NOTICES``
(``30d,14d,7d,1d``) that was still ahead when the key was verified. :func:`due_notices` says,
for one key at one moment, which threshold to send now and which to record as skipped; the
service (``keyrelease.service.notices``) makes that decision stick exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta

#: The default of KEYRELEASE_EXPIRY_NOTICES.
DEFAULT_THRESHOLDS = "30d,14d,7d,1d"
#: The units a duration may have, in seconds.
UNITS = {"d": 86400, "h": 3600, "m": 60}
_DURATION = re.compile(r"([0-9]{1,6})([a-z])")
#: The longest duration accepted (ten years): more is a typo, not a notice.
MAX_SECONDS = 3650 * 86400


def parse_duration(text: str) -> timedelta:
    """``14d``, ``12h`` or ``30m`` to a timedelta; ValueError saying what is wrong (days,
    hours and minutes; a whole number above zero)."""
    text = text.strip()
    if not text:
        raise ValueError("a duration is empty (write e.g. 14d, 12h or 30m)")
    match = _DURATION.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a duration (a whole number and a unit: d, h or m, e.g. 14d)")
    number, unit = int(match.group(1)), match.group(2)
    if unit not in UNITS:
        raise ValueError(f"{text!r} has an unknown unit {unit!r} (use d, h or m)")
    if number == 0:
        raise ValueError(f"{text!r} is zero; a duration must be above zero")
    seconds = number * UNITS[unit]
    if seconds > MAX_SECONDS:
        raise ValueError(f"{text!r} is longer than ten years")
    return timedelta(seconds=seconds)


def format_duration(duration: timedelta) -> str:
    """The shortest spelling :func:`parse_duration` reads back: ``14d``, ``36h``, ``90m``."""
    seconds = int(duration.total_seconds())
    for unit, size in UNITS.items():
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    raise ValueError(f"{duration} is not a whole number of minutes")


def parse_thresholds(text: str) -> tuple[timedelta, ...]:
    """A comma-separated list of durations, largest first; ValueError for an empty item, a bad
    duration or one given twice (``7d`` and ``168h`` are the same)."""
    found: list[timedelta] = []
    for item in text.split(","):
        if not item.strip():
            raise ValueError(f"has an empty item in {text!r} (write e.g. {DEFAULT_THRESHOLDS})")
        duration = parse_duration(item)
        if duration in found:
            raise ValueError(f"gives {format_duration(duration)} twice")
        found.append(duration)
    return tuple(sorted(found, reverse=True))


@dataclass(frozen=True)
class DueNotices:
    """What to do for one key now: send ``send`` (or nothing), record ``skipped`` without mail."""

    send: timedelta | None
    #: Due thresholds not sent: further than ``send`` (the service was down past them), or
    #: already behind when the key was verified. Recorded so they never go out later.
    skipped: tuple[timedelta, ...]


def due_notices(thresholds: tuple[timedelta, ...], *, expires_at: datetime, verified_at: datetime, now: datetime) -> DueNotices:
    """The thresholds of ``thresholds`` crossed by ``now`` for a key expiring at ``expires_at``:
    the nearest (smallest) is sent if it was still ahead when the key was verified; every
    other crossed one is skipped, so a late start sends one notice, never a burst."""
    if now >= expires_at:
        return DueNotices(None, ())
    crossed = sorted((t for t in thresholds if expires_at - t <= now), reverse=True)
    if not crossed:
        return DueNotices(None, ())
    nearest = crossed[-1]
    if expires_at - nearest > verified_at:
        return DueNotices(nearest, tuple(crossed[:-1]))
    return DueNotices(None, tuple(crossed))

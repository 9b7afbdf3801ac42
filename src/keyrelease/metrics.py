"""Prometheus metrics: the one module that imports ``prometheus_client``.

The service, the dispatcher, the rate limiter and the token endpoint call the small functions
below; none of them knows about Prometheus. Labels are fixed, small vocabularies (outcomes,
reasons, rule names): never a key id, client id, address, code, OTP or secret.

Each process exposes its own counters at ``/metrics`` (see docs/monitoring.md): sum them in
PromQL across instances. The outbox depth is read from the database when scraped, so every
instance reports the same shared number.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, Counter, Gauge, Histogram, generate_latest

VERIFICATIONS = Counter(
    "keyrelease_verifications_total",
    "verifyKey calls by outcome: verified, failed (the generic error), invalid (not six digits).",
    ["outcome"],
)
LOCKS = Counter("keyrelease_key_locks_total", "Keys locked, by reason (ATTEMPTS, WINDOW, ADMIN_DISABLED).", ["reason"])
RESENDS = Counter("keyrelease_code_resends_total", "resendCode calls by outcome: sent, refused.", ["outcome"])
REVEALS = Counter(
    "keyrelease_reveals_total",
    "revealKey calls by kind (institutional, partner) and outcome (revealed, refused).",
    ["kind", "outcome"],
)
TOKENS = Counter(
    "keyrelease_token_requests_total",
    "Token endpoint answers: granted, invalid_client, invalid_request, rate_limited, error.",
    ["outcome"],
)
BUDGET_REFUSALS = Counter(
    "keyrelease_admin_budget_refusals_total",
    "createKey/resendCode refused by an admin's budget, by rule: KEY_CREATED, CODE_EMAIL, KEY_LOCKED (suspended).",
    ["rule"],
)
CREATION_SUSPENSIONS = Counter(
    "keyrelease_key_creation_suspensions_total",
    "Admins whose createKey was suspended after too many keys locked by wrong codes (institution admins mailed).",
)
RATE_LIMITED = Counter("keyrelease_rate_limited_total", "Requests refused by a rate limit, by rule.", ["rule"])
DELIVERIES = Counter(
    "keyrelease_mail_deliveries_total",
    "Outbox delivery attempts by kind and outcome: sent, retry, failed, expired.",
    ["kind", "outcome"],
)
DELIVERY_LATENCY = Histogram(
    "keyrelease_mail_delivery_latency_seconds",
    "From queueing a message to its successful send.",
    ["kind"],
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900),
)
OUTBOX_DEPTH = Gauge(
    "keyrelease_outbox_messages", "Outbox messages waiting (PENDING) or being sent (SENDING), read at scrape.", ["status"]
)


def verification(outcome: str) -> None:
    VERIFICATIONS.labels(outcome).inc()


def lock(reason: str) -> None:
    LOCKS.labels(reason).inc()


def resend(outcome: str) -> None:
    RESENDS.labels(outcome).inc()


def reveal(kind: str, outcome: str) -> None:
    REVEALS.labels(kind, outcome).inc()


#: The token counter's children by outcome: the busiest route looks its label up in a dict
#: instead of asking prometheus_client (which validates and locks) on every request.
_TOKEN_OUTCOMES: dict[str, Any] = {}


def token(outcome: str) -> None:
    child = _TOKEN_OUTCOMES.get(outcome)
    if child is None:
        child = _TOKEN_OUTCOMES[outcome] = TOKENS.labels(outcome)
    child.inc()


def rate_limited(rule: str) -> None:
    RATE_LIMITED.labels(rule).inc()


def budget_refused(rule: str) -> None:
    BUDGET_REFUSALS.labels(rule).inc()


def creation_suspended() -> None:
    CREATION_SUSPENSIONS.inc()


def delivery(kind: str, outcome: str, latency_seconds: float | None = None) -> None:
    DELIVERIES.labels(kind, outcome).inc()
    if latency_seconds is not None:
        DELIVERY_LATENCY.labels(kind).observe(max(0.0, latency_seconds))


def set_outbox_depth(counts: dict[str, int]) -> None:
    for status in ("PENDING", "SENDING"):
        OUTBOX_DEPTH.labels(status).set(counts.get(status, 0))


def exposition() -> tuple[bytes, str]:
    """The text exposition of every metric in this process, and its content type."""
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

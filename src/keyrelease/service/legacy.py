"""Importing keys that existed before verified release (``keyrelease keys import-legacy``).

The file has one JSON object per line::

    {"institution": "Example University", "name": "Nightly export",
     "client_id": "us-east-1#0b5e…", "secret_sha256": "<64 hex>",
     "created_at": "2024-03-01T09:00:00Z", "expires_at": null}

``secret`` (the plain secret) may stand in for ``secret_sha256``; only its SHA-256 is kept.
Imported keys are ACTIVE at once (verified and revealed at ``created_at``), ``legacy``, and
never asked for verification. The whole file is one transaction: any bad line is reported as
``line N: problem`` and nothing is imported. A key already in the database with the same
client ID, secret and institution is left as it is, so importing a file twice changes nothing.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from tortoise.transactions import in_transaction

from keyrelease import credentials, validation
from keyrelease.clock import Clock
from keyrelease.models import CLIENT_ID_MAX, KEY_NAME_MAX, NAME_MAX, ApiKey, EventType, Institution, KeyEvent, KeyKind

REQUIRED = ("institution", "name", "client_id", "created_at", "expires_at")
KNOWN = frozenset(REQUIRED) | {"secret", "secret_sha256"}
CLIENT_ID = re.compile(r"[a-z0-9-]{1,32}#[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}")
SHA256_HEX = re.compile(r"[0-9a-fA-F]{64}")
SECRET_MAX = 512
MAX_PROBLEMS = 50
BATCH = 500
EVENT_DETAIL = "imported from before verified release"

#: Called as ``progress(stage, done, total)`` while the import runs ("checking", "importing").
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class LegacyKey:
    line: int
    institution: str
    name: str
    client_id: str
    secret_hash: str
    created_at: datetime
    expires_at: datetime | None

    def __repr__(self) -> str:
        return f"LegacyKey(line={self.line}, client_id={self.client_id!r}, secret_hash=<hidden>)"


@dataclass(frozen=True)
class ImportDone:
    imported: int
    unchanged: int


@dataclass(frozen=True)
class ImportRejected:
    """Nothing was imported. ``problems`` are ``line N: problem`` (at most MAX_PROBLEMS)."""

    problems: list[str]


class LineProblem(ValueError):
    """A line is not an importable key; the message says why (never a secret)."""


def parse_line(text: str, line: int, now: datetime) -> LegacyKey | None:
    """One line of the file as a key; None for a blank line. Raises :class:`LineProblem`."""
    if not text.strip():
        return None
    try:
        record = json.loads(text)
    except json.JSONDecodeError as err:
        raise LineProblem(f"not valid JSON ({err.msg} at column {err.colno})") from None
    except (ValueError, RecursionError):
        raise LineProblem("not valid JSON") from None
    if not isinstance(record, dict):
        raise LineProblem("not a JSON object")
    missing = [name for name in REQUIRED if name not in record]
    if missing:
        raise LineProblem(f"missing field {', '.join(missing)}")
    unknown = sorted(set(record) - KNOWN)
    if unknown:
        raise LineProblem(f"unknown field {', '.join(unknown)}")
    created_at = _moment(record["created_at"], "created_at")
    if created_at is None:
        raise LineProblem("created_at must not be null")
    if created_at > now:
        raise LineProblem("created_at is in the future")
    expires_at = _moment(record["expires_at"], "expires_at")
    if expires_at is not None and expires_at <= created_at:
        raise LineProblem("expires_at must be after created_at")
    client_id = record["client_id"]
    if not isinstance(client_id, str) or len(client_id) > CLIENT_ID_MAX or not CLIENT_ID.fullmatch(client_id):
        raise LineProblem("client_id must look like <region>#<uuid>, e.g. us-east-1#0b5e…")
    return LegacyKey(
        line=line,
        institution=_text(record["institution"], "institution", NAME_MAX),
        name=_text(record["name"], "name", KEY_NAME_MAX),
        client_id=client_id,
        secret_hash=_secret_hash(record),
        created_at=created_at,
        expires_at=expires_at,
    )


def parse_lines(
    lines: Sequence[bytes], now: datetime, progress: Progress | None = None
) -> list[LegacyKey] | ImportRejected:
    """Every key in the file, or every problem found (duplicates within the file included).
    A line repeating an earlier one exactly is ignored."""
    keys: list[LegacyKey] = []
    problems: list[str] = []
    first_seen: dict[str, LegacyKey] = {}
    for number, raw in enumerate(lines, start=1):
        if progress is not None:
            progress("checking", number, len(lines))
        try:
            key = parse_line(raw.decode("utf-8-sig" if number == 1 else "utf-8"), number, now)
        except UnicodeDecodeError:
            problems.append(f"line {number}: not UTF-8 text")
            continue
        except LineProblem as problem:
            problems.append(f"line {number}: {problem}")
            continue
        if key is None:
            continue
        earlier = first_seen.setdefault(key.client_id, key)
        if earlier is key:
            keys.append(key)
            continue
        conflict = _conflict(earlier.secret_hash, earlier.institution, key)
        if not conflict and _details(earlier) != _details(key):
            conflict = "with different details"
        if conflict:
            problems.append(f"line {number}: client_id {key.client_id} also on line {earlier.line} {conflict}")
    return ImportRejected(_capped(problems)) if problems else keys


async def import_legacy(
    clock: Clock, lines: Sequence[bytes], progress: Progress | None = None
) -> ImportDone | ImportRejected:
    """Import the keys of a JSON-lines file, all or nothing."""
    now = clock.now()
    parsed = parse_lines(lines, now, progress)
    if isinstance(parsed, ImportRejected):
        return parsed
    async with in_transaction():
        existing = await _existing(parsed)
        problems: list[str] = []
        new: list[LegacyKey] = []
        for key in parsed:
            row = existing.get(key.client_id)
            if row is None:
                new.append(key)
            elif conflict := _conflict(row[0], row[1], key):
                problems.append(f"line {key.line}: client_id {key.client_id} already exists {conflict}")
        if problems:
            return ImportRejected(_capped(problems))
        institutions = await _institutions({key.institution for key in new}, now)
        for start in range(0, len(new), BATCH):
            await _insert(new[start : start + BATCH], institutions, now)
            if progress is not None:
                progress("importing", min(start + BATCH, len(new)), len(new))
    return ImportDone(imported=len(new), unchanged=len(parsed) - len(new))


def _details(key: LegacyKey) -> tuple[str, datetime, datetime | None]:
    return key.name, key.created_at, key.expires_at


def _conflict(secret_hash: str | None, institution: str, key: LegacyKey) -> str:
    """Why ``key`` cannot be the key already known under its client ID ('' if it can)."""
    if secret_hash != key.secret_hash:
        return "with a different secret"
    if institution != key.institution:
        return f"for another institution ({institution!r})"
    return ""


async def _existing(keys: list[LegacyKey]) -> dict[str, tuple[str | None, str]]:
    """client_id -> (secret_hash, institution name) of keys already in the database."""
    found: dict[str, tuple[str | None, str]] = {}
    for start in range(0, len(keys), BATCH):
        ids = [key.client_id for key in keys[start : start + BATCH]]
        rows = await ApiKey.filter(client_id__in=ids).values_list("client_id", "secret_hash", "institution__name")
        found.update({client_id: (secret_hash, institution) for client_id, secret_hash, institution in rows})
    return found


async def _institutions(names: set[str], now: datetime) -> dict[str, int]:
    ids: dict[str, int] = {}
    for name in sorted(names):
        institution, _ = await Institution.get_or_create(name=name, defaults={"created_at": now})
        ids[name] = institution.id
    return ids


async def _insert(keys: list[LegacyKey], institutions: dict[str, int], now: datetime) -> None:
    rows = [
        ApiKey(
            id=uuid.uuid4(),
            institution_id=institutions[key.institution],
            created_by_id=None,
            kind=KeyKind.INSTITUTIONAL,
            name=key.name,
            client_id=key.client_id,
            secret_hash=key.secret_hash,
            created_at=key.created_at,
            expires_at=key.expires_at,
            verification_deadline=None,
            code_generation=0,
            verified_at=key.created_at,
            revealed_at=key.created_at,
            legacy=True,
        )
        for key in keys
    ]
    await ApiKey.bulk_create(rows)
    events = [KeyEvent(key_id=row.id, type=EventType.CREATED, at=now, detail=EVENT_DETAIL) for row in rows]
    await KeyEvent.bulk_create(events)


def _moment(value: object, field: str) -> datetime | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise LineProblem(f"{field} must be an ISO 8601 time, e.g. 2024-03-01T09:00:00Z")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise LineProblem(f"{field} must be an ISO 8601 time, e.g. 2024-03-01T09:00:00Z") from None
    if moment.tzinfo is None:
        raise LineProblem(f"{field} must include a time zone, e.g. 2024-03-01T09:00:00Z")
    return moment


def _text(value: object, field: str, limit: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise LineProblem(f"{field} must be a non-empty string")
    problem = validation.control_character_problem({field: value})
    if problem is not None:
        raise LineProblem(problem[1].rstrip("."))
    cleaned = value.strip()
    if len(cleaned) > limit:
        raise LineProblem(f"{field} must be at most {limit} characters")
    return cleaned


def _secret_hash(record: dict[str, object]) -> str:
    given = [name for name in ("secret_sha256", "secret") if record.get(name) is not None]
    if len(given) != 1:
        raise LineProblem("give exactly one of secret_sha256 and secret")
    value = record[given[0]]
    if given[0] == "secret_sha256":
        if not isinstance(value, str) or not SHA256_HEX.fullmatch(value):
            raise LineProblem("secret_sha256 must be 64 hexadecimal characters")
        return value.lower()
    if not isinstance(value, str) or not value or len(value) > SECRET_MAX:
        raise LineProblem(f"secret must be a string of 1 to {SECRET_MAX} characters")
    if credentials.is_mistyped_secret(value):  # the token endpoint would refuse it unread
        raise LineProblem(f"secret starts with {credentials.CLIENT_SECRET_PREFIX}, which is reserved for secrets keyrelease mints, but is not one")
    return credentials.hash_secret(value)


def _capped(problems: list[str]) -> list[str]:
    if len(problems) <= MAX_PROBLEMS:
        return problems
    return [*problems[:MAX_PROBLEMS], f"… and {len(problems) - MAX_PROBLEMS} more"]

"""What text from outside may contain: the one place that says what a control character and an
email address are, for every input (GraphQL, the CLI, settings, legacy import files).

A *control character* here is anything that changes how text is laid out or read rather than
being part of it:

- C0 (U+0000-U+001F), DEL (U+007F) and C1 (U+0080-U+009F): NUL, ESC (terminal escape
  sequences), BEL, CR and LF (new lines in logs and mail headers), and TAB too. No value
  keyrelease takes (a name, an email address, an id, a code, a one-time password) is multi-line
  or tabular text, so a TAB is a paste accident or an attempt to break column-aligned output
  and header folding; refusing it is clearer than silently changing it.
- U+2028 and U+2029 (line and paragraph separators): line breaks to many readers.
- The bidirectional embedding, override and isolate characters (U+202A-U+202E,
  U+2066-U+2069): they make a name display in another order than it is stored ("Trojan
  Source"), in the console, in an email, in a terminal.
- Lone surrogates (U+D800-U+DFFF): JSON can carry them (``"\ud800"``), but they are not text —
  no UTF-8 encoder, database or mail header accepts one.

Inputs are refused, never cleaned: what is stored is exactly what was sent. Text that is shown
anyway (a row written before this rule, a log line) goes through :func:`visible`.

How long a value may be is the width of the column it is stored in: the ``*_MAX`` constants of
:mod:`keyrelease.models`, which the input checks use too; an email address's, :data:`EMAIL_MAX`,
is RFC 5321's and stands here.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")

#: ``local@domain.tld``: no spaces, no list or quoting characters, a letters-only top-level domain.
_EMAIL = re.compile(r"[^@\s<>,;\"]+@[^@\s<>,;\"]+\.[A-Za-z]{2,63}")
EMAIL_MAX = 254  # RFC 5321's limit on a forward path


def control_character(text: str) -> str | None:
    """The first control character in ``text``, or None."""
    match = CONTROL_CHARACTERS.search(text)
    return match.group() if match else None


def code_point(character: str) -> str:
    """``U+001B``: how an error message names a character without containing it."""
    return f"U+{ord(character):04X}"


def control_character_problem(
    fields: Mapping[str, str | None], labels: Mapping[str, str] | None = None
) -> tuple[str, str] | None:
    """``(field, message)`` for the first field whose value holds a control character, or None.

    The message names the field (by its label in ``labels``, the words a person saw on the
    form, else by its name) and the character's code point, never the value (it may be a code
    or a one-time password)."""
    for field, value in fields.items():
        if value is not None and (found := control_character(value)) is not None:
            label = (labels or {}).get(field, field)
            return field, f"{label} must not contain control characters (found {code_point(found)})."
    return None


def is_email_address(value: str) -> bool:
    """Whether ``value`` is an address keyrelease will send to: ``local@domain.tld``, at most
    254 characters, no control characters. Compare after ``strip()`` if you allow padding."""
    return len(value) <= EMAIL_MAX and control_character(value) is None and _EMAIL.fullmatch(value) is not None


def visible(text: str, *, keep: str = "") -> str:
    """``text`` with every control character (except those in ``keep``) written out as its
    escape (``\\x1b``, ``\\x00``, ``\\u202e``): fit for a terminal or a log, never raw."""
    if text.isprintable():  # the usual case (every log line); no control character is printable
        return text
    return CONTROL_CHARACTERS.sub(
        lambda m: m.group() if m.group() in keep else m.group().encode("unicode_escape").decode("ascii"), text
    )

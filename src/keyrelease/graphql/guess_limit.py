"""The GraphQL guess limiter: one secret-testing field per request.

A GraphQL document can repeat a field under aliases, so without this rule one request could
try many codes or one-time passwords at once. The rule counts every field that tests a secret
(aliases and fragments included) and refuses the whole document when there is a second one,
at validation, before any resolver runs.
"""

from __future__ import annotations

from graphql import GraphQLError
from graphql.validation import ValidationRule

#: Fields that test a secret: at most one of them per request, so aliases cannot multiply guesses.
GUESSING_FIELDS = frozenset({"verifyKey", "resendCode", "revealKey", "confirmPasskeyRegistration", "resendPasskeyCode"})


class OneGuessPerRequest(ValidationRule):
    """Refuse a document with more than one verifyKey/resendCode/revealKey field (aliases
    included), before any of them runs."""

    def __init__(self, context) -> None:  # type: ignore[no-untyped-def]
        super().__init__(context)
        self.seen = 0

    def enter_field(self, node, *_args):  # type: ignore[no-untyped-def]
        if node.name.value in GUESSING_FIELDS:
            self.seen += 1
            if self.seen == 2:
                self.report_error(
                    GraphQLError(
                        "At most one verifyKey, resendCode or revealKey field is allowed per request.",
                        node,
                        extensions={"code": "TOO_MANY_GUESSES"},
                    )
                )

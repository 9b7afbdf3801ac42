"""GraphQL errors: which are expected, their codes, and what the log says about them.

Strawberry's default ``process_errors`` logs every error at ERROR with a traceback and the
query text around it — a refused ``revealKey`` put its one-time password in the log. Here:

- **Expected** errors are those the API documents, each with a code in ``extensions.code``:
  our own (``UNAUTHENTICATED``, ``RATE_LIMITED``, ``BAD_USER_INPUT``, ``TOO_MANY_GUESSES`` …)
  and GraphQL's (``GRAPHQL_PARSE_FAILED``, ``GRAPHQL_VALIDATION_FAILED``, and
  ``BAD_USER_INPUT`` for variables that do not fit their types). They cost one INFO line per
  request naming the codes; the request id is on every record.
- A database that cannot be reached is ``SERVICE_UNAVAILABLE``: one WARNING line.
- Anything else is **unexpected**: logged once at ERROR with its traceback, naming the schema
  field that raised it — never the query text, the variables, the headers or the body (and
  the log formatters withhold exception messages, see :mod:`keyrelease.logs`). The client
  gets ``Internal error.`` with code ``INTERNAL_SERVER_ERROR``.
"""

from __future__ import annotations

import logging

import strawberry
from graphql import FieldNode, GraphQLError, GraphQLSyntaxError, ValueNode
from strawberry.extensions import SchemaExtension
from strawberry.extensions.runner import SchemaExtensionsRunner
from strawberry.types import ExecutionContext

from keyrelease import db
from keyrelease.deadline import UNAVAILABLE
from keyrelease.graphql.hooks import ExtensionsRunner

log = logging.getLogger("keyrelease.graphql")

PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
BAD_USER_INPUT = "BAD_USER_INPUT"
INTERNAL = "INTERNAL_SERVER_ERROR"
SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
INTERNAL_MESSAGE = "Internal error."
#: The body of the 503 :class:`keyrelease.deadline.RequestDeadline` sends for a GraphQL request
#: (and for the other routes that are not the token endpoint).
UNAVAILABLE_BODY = {"errors": [{"message": UNAVAILABLE, "extensions": {"code": SERVICE_UNAVAILABLE}}]}


def expected_code(error: GraphQLError) -> str | None:
    """The documented code of an error the API means to answer, or None for an unexpected one."""
    code = (error.extensions or {}).get("code")
    if isinstance(code, str):
        return code
    original = error.original_error
    if isinstance(error, GraphQLSyntaxError):
        return PARSE_FAILED
    if isinstance(original, GraphQLError) and (error.path is None or _at_a_value(error)):
        # graphql-core's own refusal of a variable (before execution) or of an argument's
        # value (at execution): the client's input does not fit its type.
        return BAD_USER_INPUT
    if original is None and error.path is None:
        return VALIDATION_FAILED
    return None  # raised while resolving a field, or an extension crashed before execution


def _at_a_value(error: GraphQLError) -> bool:
    return bool(error.nodes) and isinstance(error.nodes[0], ValueNode)  # type: ignore[index]


def is_unavailable(error: GraphQLError) -> bool:
    return error.original_error is not None and db.is_unavailable(error.original_error)


def field_name(error: GraphQLError) -> str:
    """The schema field an error was raised in (its name, never an alias the client chose)."""
    node = error.nodes[0] if error.nodes else None
    return node.name.value if isinstance(node, FieldNode) else "-"


def process(errors: list[GraphQLError]) -> None:
    """Give every expected error its code, and log each error as the module docstring says."""
    codes: list[str] = []
    for error in errors:
        code = expected_code(error)
        if code is not None:
            if (error.extensions or {}).get("code") != code:
                error.extensions = {**(error.extensions or {}), "code": code}
            codes.append(code)
        elif is_unavailable(error):
            log.warning("GraphQL field %s: database unavailable (%s)", field_name(error), type(error.original_error).__name__)
        else:
            raised = error.original_error or error
            log.error("GraphQL field %s raised %s", field_name(error), type(raised).__name__, exc_info=raised)
    if codes:
        log.info("GraphQL errors: %s", ", ".join(dict.fromkeys(codes)))


class Schema(strawberry.Schema):
    """strawberry.Schema whose error log is :func:`process` instead of Strawberry's, and whose
    extensions run through :class:`keyrelease.graphql.hooks.ExtensionsRunner`."""

    def process_errors(self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None) -> None:
        process(errors)

    def create_extensions_runner(
        self, execution_context: ExecutionContext, extensions: list[SchemaExtension]
    ) -> SchemaExtensionsRunner:
        return ExtensionsRunner(execution_context=execution_context, extensions=extensions)

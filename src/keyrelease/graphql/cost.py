"""The query cost limit: the most field values an answer can hold, computed before execution.

An alias or a nested list multiplies the work a document asks for while its text stays small
(20 aliases of a page of 100 keys with their events are 2,000 keys and 40,000 values). So
before anything runs, the operation is walked with its variables and each field counts once
per object it may be resolved on:

* a field costs 1 for every parent object; a field of a list type is resolved on each item;
* a list's size is the ``first`` argument of the connection field above it (``keys(first:)``
  sizes ``edges``, its default when omitted, clamped to the page bounds), or the nominal size
  in :data:`LIST_SIZES` for lists without an argument (a key's ``events``);
* fragments count as written (members of a union are summed: a bound, not an estimate);
* introspection (``__schema``, ``__type``) costs nothing: it answers from the schema, whose
  size is fixed.

An operation over the limit is refused with ``QUERY_TOO_COSTLY`` (``cost`` and ``maxCost`` in
the error's extensions) and nothing of it runs. Documents whose variables do not coerce are
left to execution, which refuses them without running anything either.

An admin's costly operations (:data:`COSTLY` and more: far beyond anything the console sends)
take turns, one at a time in each process (:class:`AdminTurns`): one admin's parallel
requests then queue behind each other instead of filling the event loop together, and every
other request keeps its place between their steps.

An operation priced without reading a variable (no ``first`` argument anywhere: ``key(id:)``,
``me``, ``policy``) under both limits is remembered as cheap, per parsed document
(:class:`CheapOperations`, as many as the parser cache holds): a request with the same
document would be neither refused nor made to wait whatever its variables, so it skips the
walk. Only the document is remembered, nothing about the caller or the data.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from graphql import (
    ExecutionResult,
    FieldNode,
    FragmentDefinitionNode,
    FragmentSpreadNode,
    GraphQLError,
    GraphQLField,
    GraphQLInterfaceType,
    GraphQLObjectType,
    GraphQLSchema,
    InlineFragmentNode,
    SelectionSetNode,
    get_named_type,
    get_nullable_type,
    is_list_type,
)
from graphql.execution.values import VariableValues, get_argument_values, get_variable_values
from graphql.utilities import get_operation_ast
from strawberry.extensions import SchemaExtension

from keyrelease.service import api_tokens

#: Nominal sizes of the lists that take no ``first`` argument, by (type, field).
#: A key has at most about 20 events under the default policy (created, 4 codes, 5 failures,
#: lock or verification, reveal, the partner's password, its 5 failures and reveal, revocation;
#: an expiry notice or four). The policy's expiry-notice thresholds are a handful.
#: An admin's API tokens are listed :data:`keyrelease.service.api_tokens.MAX_LISTED` at most.
LIST_SIZES: Mapping[tuple[str, str], int] = {
    ("ApiKey", "events"): 20,
    ("Policy", "expiryNotices"): 10,
    ("Query", "passkeys"): 10,  # keyrelease.service.passkeys.MAX_PASSKEYS
    ("Query", "apiTokens"): api_tokens.MAX_LISTED,
}
#: The size assumed for a list the table does not name (none today; a test checks).
UNKNOWN_LIST_SIZE = 100
CODE = "QUERY_TOO_COSTLY"
#: From this cost on, one admin's operations run one at a time in a process.
COSTLY = 2_000


def operation_cost(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    page_bounds: tuple[int, int],
) -> int | None:
    """The cost of the operation the request runs, or None when it cannot be computed before
    execution (no such operation, variables that do not coerce: execution refuses those)."""
    priced = price(schema, document, operation_name, variables, page_bounds=page_bounds)
    return None if priced is None else priced.cost


@dataclass(frozen=True)
class Price:
    cost: int
    #: Whether no variable could change the cost: no ``first`` argument was read.
    fixed: bool


def price(
    schema: GraphQLSchema,
    document: Any,
    operation_name: str | None,
    variables: Mapping[str, Any] | None,
    *,
    page_bounds: tuple[int, int],
) -> Price | None:
    """:func:`operation_cost`, and whether the variables could change it."""
    operation = get_operation_ast(document, operation_name)
    if operation is None:
        return None
    coerced = get_variable_values(schema, operation.variable_definitions or (), dict(variables or {}))
    if isinstance(coerced, list):  # coercion errors
        return None
    root = schema.get_root_type(operation.operation)
    if root is None:
        return None
    fragments = {d.name.value: d for d in document.definitions if isinstance(d, FragmentDefinitionNode)}
    walk = _Walk(schema, fragments, coerced, page_bounds)
    cost = walk.selections(operation.selection_set, root, 1, None)
    return Price(cost, fixed=not walk.sized_a_page)


class _Walk:
    def __init__(
        self,
        schema: GraphQLSchema,
        fragments: dict[str, FragmentDefinitionNode],
        variables: VariableValues,
        page_bounds: tuple[int, int],
    ) -> None:
        self.schema = schema
        self.fragments = fragments
        self.variables = variables
        self.low, self.high = page_bounds
        #: Whether a ``first`` argument was read (its value may come from a variable).
        self.sized_a_page = False

    def selections(self, selection_set: SelectionSetNode, parent: Any, times: int, page: int | None) -> int:
        """The cost of ``selection_set`` resolved on ``times`` objects of type ``parent``;
        ``page``: the ``first`` of the connection field just above, sizing its list."""
        total = 0
        for selection in selection_set.selections:
            if isinstance(selection, FieldNode):
                total += self.field(selection, parent, times, page)
            elif isinstance(selection, InlineFragmentNode):
                condition = selection.type_condition
                target = self.schema.get_type(condition.name.value) if condition else parent
                total += self.selections(selection.selection_set, target, times, page)
            elif isinstance(selection, FragmentSpreadNode):
                fragment = self.fragments.get(selection.name.value)
                if fragment is not None:  # validation has refused unknown and cyclic fragments
                    target = self.schema.get_type(fragment.type_condition.name.value)
                    total += self.selections(fragment.selection_set, target, times, page)
        return total

    def field(self, node: FieldNode, parent: Any, times: int, page: int | None) -> int:
        name = node.name.value
        if name.startswith("__"):
            return 0 if name in ("__schema", "__type") else times  # __typename is one value
        definition = _field(parent, name)
        if definition is None:
            return times
        field_type = get_nullable_type(definition.type)
        cost = items = times  # the field's value, once per parent object
        if is_list_type(field_type):
            size = page if page is not None else LIST_SIZES.get((parent.name, name), UNKNOWN_LIST_SIZE)
            items = times * size
            cost += items  # and each item of the list
        if node.selection_set is not None:
            cost += self.selections(node.selection_set, get_named_type(field_type), items, self.first(node, definition))
        return cost

    def first(self, node: FieldNode, definition: GraphQLField) -> int | None:
        if "first" not in definition.args:
            return None
        self.sized_a_page = True
        try:
            value = get_argument_values(definition, node, self.variables).get("first")
        except GraphQLError:
            # An argument that does not fit its type (null for a non-null ``first``): priced
            # at the largest page here; execution refuses it as BAD_USER_INPUT at its field.
            return self.high
        if not isinstance(value, int):
            return self.high
        return max(self.low, min(value, self.high))


def _field(parent: Any, name: str) -> GraphQLField | None:
    if isinstance(parent, GraphQLObjectType | GraphQLInterfaceType):
        return parent.fields.get(name)
    return None  # a union has no fields of its own but __typename


class AdminTurns:
    """One lock per admin, made when first needed, dropped when nobody holds or awaits it."""

    def __init__(self) -> None:
        self._locks: dict[int, asyncio.Lock] = {}
        self._users: dict[int, int] = {}

    @contextlib.asynccontextmanager
    async def turn(self, admin_id: int) -> AsyncIterator[None]:
        lock = self._locks.setdefault(admin_id, asyncio.Lock())
        self._users[admin_id] = self._users.get(admin_id, 0) + 1
        try:
            async with lock:
                yield
        finally:
            self._users[admin_id] -= 1
            if not self._users[admin_id]:
                del self._users[admin_id], self._locks[admin_id]


class CheapOperations:
    """Operations known to be under both limits whatever their variables, by parsed document
    and operation name; at most ``size``, the oldest forgotten first. Each entry holds its
    document, so the document's ``id`` cannot be reused while it is remembered."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._known: dict[tuple[int, str | None], Any] = {}

    def __contains__(self, operation: tuple[Any, str | None]) -> bool:
        document, name = operation
        return self._known.get((id(document), name)) is document

    def add(self, document: Any, name: str | None) -> None:
        if len(self._known) >= self.size:
            del self._known[next(iter(self._known))]
        self._known[(id(document), name)] = document


class QueryCostLimit(SchemaExtension):
    """Refuse an operation whose cost (:func:`operation_cost`) is over ``max_cost`` before
    it executes; run an admin's costly ones one at a time. Runs after validation, so the
    document is known to be well formed."""

    def __init__(
        self, *, max_cost: int, page_bounds: tuple[int, int], turns: AdminTurns, cheap: CheapOperations
    ) -> None:
        self.max_cost = max_cost
        self.page_bounds = page_bounds
        self.turns = turns
        self.cheap = cheap

    async def on_execute(self) -> AsyncIterator[None]:
        context = self.execution_context
        document = context.graphql_document
        cost = None
        if document is not None and context.result is None and (document, context.operation_name) not in self.cheap:
            priced = price(
                context.schema._schema, document, context.operation_name, context.variables, page_bounds=self.page_bounds
            )
            cost = None if priced is None else priced.cost
            if cost is not None and cost > self.max_cost:
                context.result = ExecutionResult(data=None, errors=[too_costly(cost, self.max_cost)])
                cost = None
            elif priced is not None and priced.fixed and priced.cost < COSTLY:
                self.cheap.add(document, context.operation_name)
        admin = await context.context.admin_or_none() if cost is not None and cost >= COSTLY else None
        if admin is None:
            yield
            return
        async with self.turns.turn(admin.id):
            yield


def too_costly(cost: int, max_cost: int) -> GraphQLError:
    return GraphQLError(
        f"This query may return up to {cost} values; the limit is {max_cost}. "
        "Ask for fewer keys (first), fewer fields or fewer aliases.",
        extensions={"code": CODE, "cost": cost, "maxCost": max_cost},
    )

"""Parsing and validating a GraphQL document once: the parser's token limit, our validation
rules, and the parse and validation caches, in one Strawberry extension.

Strawberry offers each of these as an extension of its own (``MaxTokensLimiter``,
``AddValidationRules``, ``ParserCache``, ``ValidationCache``, ``DisableIntrospection``), and
every extension hook costs a context manager built, entered and left on every request. Here
they are two hooks, doing what those extensions did in the same order:

* **parse**: the document is parsed with ``max_tokens`` (a longer one fails to parse, as
  ``MaxTokensLimiter`` makes it), through an LRU cache keyed by the document's text;
* **validate**: ``rules`` are added after Strawberry's own (as ``AddValidationRules`` and then
  ``DisableIntrospection`` added theirs), and the errors of validating the document against
  them are kept with the parsed document, so a cached document is validated once. Strawberry's
  ``ValidationCache`` keyed its cache by the document itself, hashing its whole tree on every
  request; keying by the text, which the parse cache already hashed, gives the same document.

Only documents are cached, never anything about a caller or a result.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator

from graphql import DocumentNode, GraphQLError, GraphQLSchema
from graphql.language.parser import parse
from graphql.validation import ASTValidationRule
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

Rules = tuple[type[ASTValidationRule], ...]


class Parsed:
    """A parsed document and the errors of validating it, by set of rules (one set in practice)."""

    __slots__ = ("document", "_errors")

    def __init__(self, document: DocumentNode) -> None:
        self.document = document
        self._errors: dict[Rules, list[GraphQLError]] = {}

    def errors(self, schema: GraphQLSchema, rules: Rules) -> list[GraphQLError]:
        errors = self._errors.get(rules)
        if errors is None:
            errors = self._errors[rules] = validate_document(schema, self.document, rules)
        return errors


def parse_cache(maxsize: int) -> Callable[[str, int], Parsed]:
    """``(text, max_tokens) -> Parsed``, the last ``maxsize`` documents kept. A document that
    does not parse raises each time (an exception is not cached)."""

    @functools.lru_cache(maxsize=maxsize)
    def parsed(text: str, max_tokens: int) -> Parsed:
        return Parsed(parse(text, max_tokens=max_tokens))

    return parsed


class DocumentCache(SchemaExtension):
    """See the module docstring. ``parsed``: a :func:`parse_cache`, shared by every request."""

    def __init__(self, *, max_tokens: int, rules: Rules, parsed: Callable[[str, int], Parsed]) -> None:
        self.max_tokens = max_tokens
        self.rules = rules
        self.parsed = parsed
        self._document: Parsed | None = None

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        context.parse_options["max_tokens"] = self.max_tokens
        self._document = self.parsed(context.query, self.max_tokens)  # type: ignore[arg-type]
        context.graphql_document = self._document.document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        context.validation_rules = context.validation_rules + self.rules
        assert self._document is not None  # parsed: Strawberry validates only after parsing
        context.pre_execution_errors = self._document.errors(context.schema._schema, context.validation_rules)
        yield

"""The Strawberry ASGI view at /graphql: builds the per-request context."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from strawberry.asgi import GraphQL

from keyrelease.clock import Clock
from keyrelease.graphql.context import Context
from keyrelease.service.keys import KeyService


class GraphQLView(GraphQL):
    def __init__(self, schema, *, keys: KeyService, clock: Clock) -> None:  # type: ignore[no-untyped-def]
        super().__init__(schema, graphql_ide="graphiql", allow_queries_via_get=False, subscription_protocols=())
        self._keys = keys
        self._clock = clock

    async def get_context(self, request: Request, response: Response) -> Context:  # type: ignore[override]
        return Context(request=request, keys=self._keys, clock=self._clock)

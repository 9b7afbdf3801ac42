"""The Strawberry ASGI view at /graphql: builds the per-request context, and answers a
browser's GET with keyrelease's own GraphiQL page (keyrelease.web), not Strawberry's."""

from __future__ import annotations

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from strawberry.asgi import GraphQL

from keyrelease import web
from keyrelease.clock import Clock
from keyrelease.graphql.context import Context
from keyrelease.service.keys import KeyService


class GraphQLView(GraphQL):
    def __init__(self, schema, *, keys: KeyService, clock: Clock, graphiql: bool = True) -> None:  # type: ignore[no-untyped-def]
        super().__init__(schema, graphql_ide="graphiql", allow_queries_via_get=False, subscription_protocols=())
        self._keys = keys
        self._clock = clock
        self._graphiql = graphiql

    async def render_graphql_ide(self, request: Request) -> Response:  # type: ignore[override]
        """Our GraphiQL (every asset from this origin, under a strict policy), never
        Strawberry's page, which loads React and GraphiQL from a CDN."""
        return web.graphiql_page(self._graphiql)

    async def get_context(self, request: Request, response: Response) -> Context:  # type: ignore[override]
        return Context(request=request, keys=self._keys, clock=self._clock, response=response)

    def parse_json(self, data: str | bytes) -> object:
        """Strawberry's parser, also refusing bodies that are JSON but not an object (or a
        list, which the batching check then refuses) with a clean 400."""
        try:
            parsed = self.decode_json(data)
        except ValueError:
            raise HTTPException(400, "Unable to parse request body as JSON") from None
        if not isinstance(parsed, dict | list):
            raise HTTPException(400, "The request body must be a JSON object with a `query`.")
        return parsed

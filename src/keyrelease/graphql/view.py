"""The Strawberry ASGI view at /graphql: builds the per-request context, refuses a large
document from a caller without an admin token before it is parsed, and answers a browser's GET
with keyrelease's own GraphiQL page (keyrelease.web), not Strawberry's."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from cross_web import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from strawberry.asgi import GraphQL
from strawberry.types.unset import UNSET

from keyrelease import web
from keyrelease.client_address import IPNetwork
from keyrelease.clock import Clock
from keyrelease.graphql.context import Context
from keyrelease.service.api_tokens import ApiTokens
from keyrelease.service.keys import KeyService
from keyrelease.service.ratelimit import RateLimiter
from keyrelease.web.sign_in import SessionCookies

#: The code of the refusal below (docs/api.md).
DOCUMENT_TOO_LARGE = "DOCUMENT_TOO_LARGE"


class UnauthenticatedDocumentTooLarge(Exception):
    pass


class GraphQLView(GraphQL):
    def __init__(  # type: ignore[no-untyped-def]
        self,
        schema,
        *,
        keys: KeyService,
        clock: Clock,
        limiter: RateLimiter,
        trusted_proxies: tuple[IPNetwork, ...],
        api_tokens: ApiTokens,
        graphiql: bool,
        max_unauthenticated_bytes: int,
        expiry_notices: tuple[timedelta, ...] = (),
        session_cookies: SessionCookies | None = None,
    ) -> None:
        super().__init__(schema, graphql_ide="graphiql", allow_queries_via_get=False, subscription_protocols=())
        self._keys = keys
        self._clock = clock
        self._limiter = limiter
        self._trusted_proxies = trusted_proxies
        self._api_tokens = api_tokens
        self._graphiql = graphiql
        self.max_unauthenticated_bytes = max_unauthenticated_bytes
        self._expiry_notices = expiry_notices
        self._session_cookies = session_cookies

    async def render_graphql_ide(self, request: Request) -> Response:  # type: ignore[override]
        """Our GraphiQL (every asset from this origin, under a strict policy), never
        Strawberry's page, which loads React and GraphiQL from a CDN."""
        return web.graphiql_page(self._graphiql)

    async def get_context(self, request: Request, response: Response) -> Context:  # type: ignore[override]
        return Context(
            request=request,
            keys=self._keys,
            clock=self._clock,
            limiter=self._limiter,
            trusted_proxies=self._trusted_proxies,
            api_tokens=self._api_tokens,
            response=response,
            expiry_notices=self._expiry_notices,
            session_cookies=self._session_cookies,
        )

    async def run(self, request, context=UNSET, root_value=UNSET):  # type: ignore[no-untyped-def]
        try:
            return await super().run(request, context, root_value)
        except UnauthenticatedDocumentTooLarge:
            message = (
                f"Documents larger than {self.max_unauthenticated_bytes} bytes need an admin token: "
                "send the header Authorization: Bearer <admin token>."
            )
            return JSONResponse({"errors": [{"message": message, "extensions": {"code": DOCUMENT_TOO_LARGE}}]}, 413)

    async def execute_operation(self, *args: Any, **kwargs: Any) -> Any:  # type: ignore[override]
        """Parsing and validating cost CPU in proportion to the document: without an admin
        token (the partner's revealKey, a few hundred bytes), only a small one is accepted.
        A larger one costs one token look-up, and none when no token is sent."""
        data, context = kwargs["request_data"], kwargs["context"]
        query = getattr(data, "query", None)  # a batch (a list) is refused by Strawberry later
        oversize = isinstance(query, str) and len(query.encode("utf-8", "surrogatepass")) > self.max_unauthenticated_bytes
        if oversize and await context.admin_or_none() is None:
            raise UnauthenticatedDocumentTooLarge
        return await super().execute_operation(*args, **kwargs)

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

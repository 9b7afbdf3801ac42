"""The physical limit: a bare Starlette JSON endpoint, served by uvicorn exactly as
``keyrelease serve`` serves the real app (one worker, same loop/http defaults, same log level,
``proxy_headers=False``, the same ``--http`` and ``--loop``). ``python bench/bare_app.py --port P``.

``--strawberry`` serves instead the smallest Strawberry app, at ``/graphql``: one query field
returning a constant, with the parser and validation caches keyrelease uses. It is what
Strawberry itself costs per request, the floor under any GraphQL query of ours.
"""

from __future__ import annotations

import argparse

import strawberry
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from strawberry.asgi import GraphQL
from strawberry.extensions import ParserCache, ValidationCache


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


@strawberry.type
class Query:
    @strawberry.field
    def hello(self) -> str:
        return "world"


def strawberry_app() -> Starlette:
    schema = strawberry.Schema(
        query=Query, extensions=[lambda: ParserCache(maxsize=256), lambda: ValidationCache(maxsize=256)]
    )
    return Starlette(routes=[Route("/graphql", GraphQL(schema), methods=["GET", "POST"]), Route("/healthz", hello)])


app = Starlette(routes=[Route("/", hello), Route("/healthz", hello)])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--log-level", default="warning")
    parser.add_argument("--http", default="auto")
    parser.add_argument("--loop", default="auto")
    parser.add_argument("--strawberry", action="store_true")
    args = parser.parse_args()
    uvicorn.run(strawberry_app() if args.strawberry else app, host=args.host, port=args.port,
                log_level=args.log_level, proxy_headers=False, http=args.http, loop=args.loop)


if __name__ == "__main__":
    main()

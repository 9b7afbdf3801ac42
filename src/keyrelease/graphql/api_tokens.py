"""The GraphQL types, inputs and results of an admin's API tokens (``apiTokens``,
``createApiToken``, ``revokeApiToken``; :mod:`keyrelease.service.api_tokens` does the work)."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

import strawberry

from keyrelease import models
from keyrelease.graphql.context import TOKEN_NOT_ACCEPTED, ClientError
from keyrelease.graphql.types import Error, ValidationError
from keyrelease.service import api_tokens, results


@strawberry.enum(description="ACTIVE: accepted. EXPIRED: past its expiresAt. REVOKED: revoked (revokedAt).")
class ApiTokenStatus(StrEnum):
    ACTIVE = "ACTIVE"
    EXPIRED = "EXPIRED"
    REVOKED = "REVOKED"


@strawberry.type(description="One of your API tokens (admin bearer tokens). Its value is never shown again.")
class ApiToken:
    id: strawberry.ID
    name: str = strawberry.field(description="`cli` for a token from `keyrelease admin create` or `admin token`.")
    status: ApiTokenStatus
    created_at: datetime
    expires_at: datetime | None = strawberry.field(description="Null only for a CLI token made to last until revoked.")
    last_used_at: datetime | None = strawberry.field(
        description="The latest request it signed in, written in batches: it may lag by the flush interval."
    )
    revoked_at: datetime | None
    in_use: bool = strawberry.field(description="Whether this request was sent with this token.")

    @classmethod
    def of(cls, row: models.AdminToken, now: datetime, token_in_use: int | None) -> ApiToken:
        if row.revoked_at is not None:
            status = ApiTokenStatus.REVOKED
        else:
            status = ApiTokenStatus.ACTIVE if api_tokens.is_live(row, now) else ApiTokenStatus.EXPIRED
        return cls(
            id=strawberry.ID(str(row.id)),
            name=row.name,
            status=status,
            created_at=row.created_at,
            expires_at=row.expires_at,
            last_used_at=row.last_used_at,
            revoked_at=row.revoked_at,
            in_use=row.id == token_in_use,
        )


@strawberry.type(description="A new API token and its value: shown in this answer only, stored only as a hash.")
class CreatedApiToken:
    token: ApiToken
    value: str = strawberry.field(description="Send it as `Authorization: Bearer <value>`. It is never shown again.")


@strawberry.type(description="No API token of yours has this id (an unknown id and another admin's get this same answer).")
class ApiTokenNotFoundError(Error):
    message: str


@strawberry.type(description="You hold the most API tokens that are neither revoked nor expired; revoke one first.")
class ApiTokenLimitError(Error):
    message: str
    limit: int


@strawberry.input(description="A name for the token and when it stops working (required; see the server's maximum).")
class CreateApiTokenInput:
    name: str
    expires_at: datetime


@strawberry.input
class RevokeApiTokenInput:
    id: strawberry.ID


CreateApiTokenResult = Annotated[
    CreatedApiToken | ValidationError | ApiTokenLimitError, strawberry.union("CreateApiTokenResult")
]
RevokeApiTokenResult = Annotated[
    ApiToken | ApiTokenNotFoundError | ValidationError, strawberry.union("RevokeApiTokenResult")
]


def map_result(result: object, now: datetime, token_in_use: int | None) -> Any:
    """A service result to its GraphQL type."""
    match result:
        case api_tokens.NewApiToken(token=row, value=value):
            return CreatedApiToken(token=ApiToken.of(row, now, token_in_use), value=value)
        case models.AdminToken():
            return ApiToken.of(result, now, token_in_use)
        case results.InvalidInput(field=field, message=message):
            return ValidationError(field=field, message=message)
        case api_tokens.ApiTokenNotFound(message=message):
            return ApiTokenNotFoundError(message=message)
        case api_tokens.ApiTokenLimitReached(limit=limit):
            return ApiTokenLimitError(message=result.message, limit=limit)
        case results.SignInRefused():  # disabled meanwhile: the answer to a refused token
            raise ClientError(TOKEN_NOT_ACCEPTED, "UNAUTHENTICATED")
    raise TypeError(f"unmapped service result {type(result).__name__}")

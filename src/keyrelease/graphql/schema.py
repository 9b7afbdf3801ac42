"""The GraphQL schema: queries and mutations (thin: parse, call one service function, map),
and the hardening extensions."""

from __future__ import annotations

import logging
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from graphql.validation import ASTValidationRule
from strawberry.extensions import (
    AddValidationRules,
    DisableIntrospection,
    MaskErrors,
    MaxTokensLimiter,
    ParserCache,
    ValidationCache,
)
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info

from keyrelease import db
from keyrelease.deadline import UNAVAILABLE
from keyrelease.graphql.context import ClientError, Context
from keyrelease.graphql.guess_limit import OneGuessPerRequest
from keyrelease.graphql.inputs import CreateKeyInput, ResendCodeInput, RevealKeyInput, RevokeKeyInput, VerifyKeyInput
from keyrelease.graphql.types import (
    AdminType,
    ApiKey,
    KeyConnection,
    KeyCredentials,
    KeyEdge,
    KeyNotFoundError,
    KeyStatus,
    PageInfo,
    PendingKeyLimitError,
    ValidationError,
    VerificationError,
)
from keyrelease.models import ApiKey as ApiKeyModel
from keyrelease.service import queries, results

CreateKeyResult = Annotated[ApiKey | ValidationError | PendingKeyLimitError, strawberry.union("CreateKeyResult")]
VerifyKeyResult = Annotated[ApiKey | VerificationError | ValidationError, strawberry.union("VerifyKeyResult")]
ResendCodeResult = Annotated[ApiKey | VerificationError, strawberry.union("ResendCodeResult")]
RevealKeyResult = Annotated[KeyCredentials | VerificationError, strawberry.union("RevealKeyResult")]
RevokeKeyResult = Annotated[ApiKey | KeyNotFoundError, strawberry.union("RevokeKeyResult")]

log = logging.getLogger("keyrelease.graphql")

MAX_ALIASES = 20


def _map(result: object) -> Any:
    """A service result to its GraphQL type."""
    match result:
        case ApiKeyModel():
            return ApiKey(model=result)
        case results.Credentials(client_id=client_id, client_secret=secret):
            return KeyCredentials(client_id=client_id, client_secret=secret)
        case results.VerificationFailed(message=message):
            return VerificationError(message=message)
        case results.InvalidInput(field=field, message=message):
            return ValidationError(field=field, message=message)
        case results.PendingLimitReached():
            return PendingKeyLimitError(message=result.message, limit=result.limit)
        case results.KeyNotFound(message=message):
            return KeyNotFoundError(message=message)
    raise TypeError(f"unmapped service result {type(result).__name__}")


@strawberry.type
class Query:
    @strawberry.field(description="The admin making the request.")
    async def me(self, info: Info[Context, None]) -> AdminType:
        return AdminType.of(await info.context.admin())

    @strawberry.field(description="A key of your institution, or null.")
    async def key(self, info: Info[Context, None], id: strawberry.ID) -> ApiKey | None:
        model = await queries.get_key(await info.context.admin(), id)
        return ApiKey(model=model) if model else None

    @strawberry.field(description="Keys of your institution, newest first.")
    async def keys(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        status: KeyStatus | None = None,
    ) -> KeyConnection:
        admin = await info.context.admin()
        if not 1 <= first <= queries.MAX_PAGE:
            raise ClientError(f"first must be between 1 and {queries.MAX_PAGE}.", "BAD_USER_INPUT")
        try:
            page = await queries.list_keys(admin, info.context.clock.now(), first=first, after=after, status=status)
        except queries.BadCursor as err:
            raise ClientError(str(err), "BAD_USER_INPUT") from None
        edges = [KeyEdge(cursor=queries.encode_cursor(k), node=ApiKey(model=k)) for k in page.keys]
        return KeyConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None),
        )


@strawberry.type
class Mutation:
    @strawberry.mutation(name="createKey", description="Create a key, held PENDING_VERIFICATION; a code is emailed to you.")
    async def create_key(self, info: Info[Context, None], input: CreateKeyInput) -> CreateKeyResult:
        admin = await info.context.mutating_admin()
        return _map(
            await info.context.keys.create_key(
                admin,
                name=input.name,
                kind=input.kind,
                expires_at=input.expires_at,
                partner_name=input.partner_name,
                partner_email=input.partner_email,
            )
        )

    @strawberry.mutation(name="verifyKey", description="Enter the emailed code. Every failure is the same VerificationError.")
    async def verify_key(self, info: Info[Context, None], input: VerifyKeyInput) -> VerifyKeyResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.verify_key(admin, input.key_id, input.code))

    @strawberry.mutation(name="resendCode", description="Send a new code (the previous one stops working).")
    async def resend_code(self, info: Info[Context, None], input: ResendCodeInput) -> ResendCodeResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.resend_code(admin, input.key_id))

    @strawberry.mutation(
        name="revealKey",
        description="Return the credentials once: an admin for an institutional key, a partner with the emailed oneTimePassword.",
    )
    async def reveal_key(self, info: Info[Context, None], input: RevealKeyInput) -> RevealKeyResult:
        if input.one_time_password is not None:
            await info.context.check_partner_reveal(input.key_id)
            return _map(await info.context.keys.reveal_partner_key(input.key_id, input.one_time_password))
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.reveal_key(admin, input.key_id))

    @strawberry.mutation(name="revokeKey", description="Revoke a key of your institution; it can never be used again.")
    async def revoke_key(self, info: Info[Context, None], input: RevokeKeyInput) -> RevokeKeyResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.revoke_key(admin, input.key_id))


def _should_mask(error: GraphQLError) -> bool:
    """Mask what we did not mean to say: exceptions from our code. Parse and validation errors
    and our ClientErrors stay as they are."""
    original = error.original_error
    return original is not None and not isinstance(original, (ClientError, GraphQLError))


class MaskUnexpectedErrors(MaskErrors):
    """Unexpected exceptions become ``Internal error.`` (logged once with their traceback);
    an unreachable database becomes a retryable SERVICE_UNAVAILABLE error."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_should_mask, error_message="Internal error.")

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        if original is not None and db.is_unavailable(original):
            log.warning("GraphQL %s failed: database unavailable (%s)", error.path, type(original).__name__)
            return GraphQLError(
                UNAVAILABLE, error.nodes, path=error.path, extensions={"code": "SERVICE_UNAVAILABLE"}
            )
        return super().anonymise_error(error)


def build_schema(*, introspection: bool = True, max_depth: int = 10, max_tokens: int = 2000) -> strawberry.Schema:
    # The validation rules are built once: the validation cache is keyed by the rule classes,
    # and QueryDepthLimiter/MaxAliasesLimiter would make new classes on every request, so
    # the cache would never hit (a third of a small query's time went to validation).
    rules: list[type[ASTValidationRule]] = [OneGuessPerRequest, depth_rule(max_depth, None, None), alias_rule(MAX_ALIASES)]
    extensions: list = [
        lambda: MaxTokensLimiter(max_token_count=max_tokens),
        lambda: AddValidationRules(rules),
        lambda: ParserCache(maxsize=256),
        lambda: ValidationCache(maxsize=256),
        MaskUnexpectedErrors,
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return strawberry.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )

"""The GraphQL schema: queries and mutations (thin: parse, call one service function, map),
and the hardening extensions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

import strawberry
from graphql import GraphQLError
from graphql.validation import ASTValidationRule, NoSchemaIntrospectionCustomRule
from strawberry.extensions import MaskErrors
from strawberry.extensions.max_aliases import create_validator as alias_rule
from strawberry.extensions.query_depth_limiter import create_validator as depth_rule
from strawberry.schema.config import StrawberryConfig
from strawberry.types import Info
from strawberry.types.nodes import SelectedField, Selection

from keyrelease.deadline import UNAVAILABLE
from keyrelease.graphql import errors, limits
from keyrelease.graphql import passkeys as gql_passkeys
from keyrelease.graphql.api_tokens import (
    ApiToken,
    CreateApiTokenInput,
    CreateApiTokenResult,
    RevokeApiTokenInput,
    RevokeApiTokenResult,
)
from keyrelease.graphql.api_tokens import map_result as map_token_result
from keyrelease.graphql.context import TOKEN_NOT_ACCEPTED, ClientError, Context
from keyrelease.graphql.cost import AdminTurns, CheapOperations, QueryCostLimit
from keyrelease.graphql.documents import DocumentCache, parse_cache
from keyrelease.graphql.guess_limit import OneGuessPerRequest
from keyrelease.graphql.inputs import (
    CancelRotationInput,
    CreateKeyInput,
    ResendCodeInput,
    RevealKeyInput,
    RevokeKeyInput,
    RotateKeyInput,
    VerifyKeyInput,
)
from keyrelease.graphql.types import (
    AdminType,
    ApiKey,
    CodeEmailLimitError,
    DailyKeyLimitError,
    KeyConnection,
    KeyCreationSuspendedError,
    KeyCredentials,
    KeyEdge,
    KeyNotFoundError,
    KeyStatus,
    PageInfo,
    PendingKeyLimitError,
    Policy,
    ValidationError,
    VerificationError,
)
from keyrelease.models import ApiKey as ApiKeyModel
from keyrelease.models import Passkey as PasskeyModel
from keyrelease.service import passkeys as passkey_service
from keyrelease.service import queries, results

CreateKeyResult = Annotated[
    ApiKey | ValidationError | PendingKeyLimitError | DailyKeyLimitError | CodeEmailLimitError | KeyCreationSuspendedError,
    strawberry.union("CreateKeyResult"),
]
VerifyKeyResult = Annotated[ApiKey | VerificationError | ValidationError, strawberry.union("VerifyKeyResult")]
ResendCodeResult = Annotated[
    ApiKey | VerificationError | ValidationError | CodeEmailLimitError, strawberry.union("ResendCodeResult")
]
RevealKeyResult = Annotated[KeyCredentials | VerificationError | ValidationError, strawberry.union("RevealKeyResult")]
RevokeKeyResult = Annotated[ApiKey | KeyNotFoundError | ValidationError, strawberry.union("RevokeKeyResult")]
RotateKeyResult = Annotated[
    ApiKey | KeyNotFoundError | ValidationError | CodeEmailLimitError | DailyKeyLimitError | KeyCreationSuspendedError,
    strawberry.union("RotateKeyResult"),
]
CancelRotationResult = Annotated[ApiKey | KeyNotFoundError | ValidationError, strawberry.union("CancelRotationResult")]
StartPasskeyRegistrationResult = Annotated[
    gql_passkeys.PasskeyRegistration | ValidationError | CodeEmailLimitError, strawberry.union("StartPasskeyRegistrationResult")
]
ResendPasskeyCodeResult = Annotated[
    gql_passkeys.PasskeyRegistration | VerificationError | CodeEmailLimitError, strawberry.union("ResendPasskeyCodeResult")
]
ConfirmPasskeyRegistrationResult = Annotated[
    gql_passkeys.PasskeyOptions | VerificationError | ValidationError, strawberry.union("ConfirmPasskeyRegistrationResult")
]
FinishPasskeyRegistrationResult = Annotated[
    gql_passkeys.Passkey | ValidationError, strawberry.union("FinishPasskeyRegistrationResult")
]
RenamePasskeyResult = Annotated[
    gql_passkeys.Passkey | ValidationError | gql_passkeys.PasskeyNotFoundError, strawberry.union("RenamePasskeyResult")
]
RemovePasskeyResult = Annotated[gql_passkeys.Passkey | gql_passkeys.PasskeyNotFoundError, strawberry.union("RemovePasskeyResult")]
BeginPasskeyVerificationResult = Annotated[
    gql_passkeys.PasskeyOptions | VerificationError | ValidationError, strawberry.union("BeginPasskeyVerificationResult")
]

#: Fields of a key read with a statement of their own, loaded for a whole page at once.
LOADED_KEY_FIELDS = frozenset({"events", "lastDelivery", "rotation"})


def _map(result: object) -> Any:
    """A service result to its GraphQL type."""
    match result:
        case ApiKeyModel():
            return ApiKey.of(result)
        case results.Credentials(client_id=client_id, client_secret=secret):
            return KeyCredentials(client_id=client_id, client_secret=secret)
        case results.VerificationFailed(message=message):
            return VerificationError(message=message)
        case results.InvalidInput(field=field, message=message):
            return ValidationError(field=field, message=message)
        case results.PendingLimitReached():
            return PendingKeyLimitError(message=result.message, limit=result.limit)
        case results.DailyKeyLimitReached(limit=limit, retry_at=retry_at):
            return DailyKeyLimitError(message=result.message, limit=limit, retry_at=retry_at)
        case results.CodeEmailLimitReached(limit=limit, retry_at=retry_at):
            return CodeEmailLimitError(message=result.message, limit=limit, retry_at=retry_at)
        case results.KeyCreationSuspended(limit=limit, locked=locked, retry_at=retry_at):
            return KeyCreationSuspendedError(message=result.message, limit=limit, locked_keys=locked, retry_at=retry_at)
        case results.KeyNotFound(message=message):
            return KeyNotFoundError(message=message)
        case PasskeyModel():
            return gql_passkeys.Passkey.of(result)
        case passkey_service.RegistrationStarted():
            return gql_passkeys.PasskeyRegistration(
                registration_id=strawberry.ID(str(result.enrollment_id)),
                code_expires_at=result.code_expires_at,
                request_options=result.request_options,
            )
        case passkey_service.CeremonyOptions(options=options):
            return gql_passkeys.PasskeyOptions(options=options)
        case passkey_service.PasskeyNotFound(message=message):
            return gql_passkeys.PasskeyNotFoundError(message=message)
        case results.SignInRefused():  # disabled meanwhile: the answer to a refused token
            raise ClientError(TOKEN_NOT_ACCEPTED, "UNAUTHENTICATED")
    raise TypeError(f"unmapped service result {type(result).__name__}")


@strawberry.type
class Query:
    @strawberry.field(description="The admin making the request.")
    async def me(self, info: Info[Context, None]) -> AdminType:
        return AdminType.of(await info.context.querying_admin())

    @strawberry.field(
        description="The server's clock, so a client can show deadlines and countdowns without trusting its own.",
    )
    def server_time(self, info: Info[Context, None]) -> datetime:
        return info.context.clock.now()

    @strawberry.field(description="The numbers of the verification flow this server enforces.")
    async def policy(self, info: Info[Context, None]) -> Policy:
        await info.context.querying_admin()
        return Policy.of(info.context.keys.policy, info.context.expiry_notices, rotation=info.context.keys.rotations.policy)

    @strawberry.field(description="Your passkeys, oldest first.")
    async def passkeys(self, info: Info[Context, None]) -> list[gql_passkeys.Passkey]:
        admin = await info.context.querying_admin()
        return [gql_passkeys.Passkey.of(p) for p in await info.context.keys.passkeys.of_admin(admin)]

    @strawberry.field(
        description="Your own API tokens (admin bearer tokens, the CLI's too): every live one, newest first, "
        "then the newest revoked or expired ones, 50 in all. Never a token's value.",
    )
    async def api_tokens(self, info: Info[Context, None]) -> list[ApiToken]:
        context = info.context
        rows = await context.api_tokens.list(await context.querying_admin())
        return [ApiToken.of(row, context.clock.now(), context.token_id) for row in rows]

    @strawberry.field(description="A key of your institution, or null.")
    async def key(self, info: Info[Context, None], id: strawberry.ID) -> ApiKey | None:
        try:
            model = await queries.get_key(await info.context.querying_admin(), id)
        except queries.BadQueryInput as err:
            raise ClientError(str(err), "BAD_USER_INPUT") from None
        return ApiKey.of(model) if model else None

    @strawberry.field(description="Keys of your institution, newest first.")
    async def keys(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        status: KeyStatus | None = None,
        expiring_within: Annotated[
            str | None,
            strawberry.argument(
                description="Only keys that may still authenticate and expire within this duration from now: "
                "a whole number and a unit, d, h or m (`14d`, `12h`, `30m`)."
            ),
        ] = None,
    ) -> KeyConnection:
        admin = await info.context.querying_admin()
        if not 1 <= first <= queries.MAX_PAGE:
            raise ClientError(f"first must be between 1 and {queries.MAX_PAGE}.", "BAD_USER_INPUT")
        loaders = info.context.loaders
        try:
            page = await loaders.page(
                admin, info.context.clock.now(), first=first, after=after, status=status, expiring_within=expiring_within
            )
        except queries.BadQueryInput as err:
            raise ClientError(str(err), "BAD_USER_INPUT") from None
        await loaders.preload([k.id for k in page.keys], _asked_of_each_key(info.selected_fields))
        edges = [KeyEdge(cursor=queries.encode_cursor(k), node=ApiKey.of(k)) for k in page.keys]
        return KeyConnection(
            edges=edges,
            page_info=PageInfo(has_next_page=page.has_next_page, end_cursor=edges[-1].cursor if edges else None),
        )


def _asked_of_each_key(selections: list[Selection]) -> set[str]:
    """Which of a key's loaded fields (``events``, ``lastDelivery``) the selection asks for,
    at any depth, through fragments."""
    asked: set[str] = set()
    for selection in selections:
        if isinstance(selection, SelectedField) and selection.name in LOADED_KEY_FIELDS:
            asked.add(selection.name)
        asked |= _asked_of_each_key(selection.selections)
    return asked


@strawberry.type
class Mutation:
    @strawberry.mutation(description="Create a key, held PENDING_VERIFICATION; a code is emailed to you.")
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

    @strawberry.mutation(
        description="Enter the emailed code, or a passkey assertion made for this key (beginPasskeyVerification). "
        "Every failure is the same VerificationError.",
    )
    async def verify_key(self, info: Info[Context, None], input: VerifyKeyInput) -> VerifyKeyResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.verify_key(admin, input.key_id, input.code, input.passkey_assertion))

    @strawberry.mutation(
        description="Send a new code (the previous one stops working). Every failure is the same VerificationError, "
        "except CodeEmailLimitError for your own resendable key when your hourly code emails are spent.",
    )
    async def resend_code(self, info: Info[Context, None], input: ResendCodeInput) -> ResendCodeResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.resend_code(admin, input.key_id))

    @strawberry.mutation(
        description="Return the credentials once: an admin for an institutional key, a partner with the emailed oneTimePassword.",
    )
    async def reveal_key(self, info: Info[Context, None], input: RevealKeyInput) -> RevealKeyResult:
        if input.one_time_password is not None:
            await info.context.check_partner_reveal(input.key_id)
            return _map(await info.context.keys.reveal_partner_key(input.key_id, input.one_time_password))
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.reveal_key(admin, input.key_id))

    @strawberry.mutation(description="Revoke a key of your institution; it can never be used again.")
    async def revoke_key(self, info: Info[Context, None], input: RevokeKeyInput) -> RevokeKeyResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.revoke_key(admin, input.key_id))

    @strawberry.mutation(
        description="Start a rotation of an active, released key's secret: a code is emailed to you; verifyKey, "
        "resendCode and revealKey (or the partner's retrieval) then act on the rotation, with a new key's rules. "
        "The old secret keeps working until a while after the new one's first use.",
    )
    async def rotate_key(self, info: Info[Context, None], input: RotateKeyInput) -> RotateKeyResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.rotations.rotate_key(admin, input.key_id, input.expires_at))

    @strawberry.mutation(description="Cancel a key's rotation before its release; the key keeps its old secret.")
    async def cancel_rotation(self, info: Info[Context, None], input: CancelRotationInput) -> CancelRotationResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.rotations.cancel_rotation(admin, input.key_id))


    # -- passkeys (keyrelease.service.passkeys) ----------------------------------------------

    @strawberry.mutation(
        description="Request options for releasing your pending key (or its pending rotation) with a passkey: "
        "the challenge is bound to this key and this code generation or rotation, and works once.",
    )
    async def begin_passkey_verification(
        self, info: Info[Context, None], input: gql_passkeys.BeginPasskeyVerificationInput
    ) -> BeginPasskeyVerificationResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.passkeys.begin_verification(admin, input.key_id))

    @strawberry.mutation(description="Start adding a passkey: a code is emailed to you, or (proof PASSKEY) prove it with a passkey you have.")
    async def start_passkey_registration(
        self, info: Info[Context, None], input: gql_passkeys.StartPasskeyRegistrationInput
    ) -> StartPasskeyRegistrationResult:
        admin = await info.context.mutating_admin()
        proof = input.proof is gql_passkeys.PasskeyProof.PASSKEY
        return _map(await info.context.keys.passkeys.start_registration(admin, with_passkey=proof))

    @strawberry.mutation(description="Send a new code for a passkey registration (the previous one stops working).")
    async def resend_passkey_code(
        self, info: Info[Context, None], input: gql_passkeys.ResendPasskeyCodeInput
    ) -> ResendPasskeyCodeResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.passkeys.resend_registration_code(admin, input.registration_id))

    @strawberry.mutation(description="Prove a passkey registration; answers the options for navigator.credentials.create.")
    async def confirm_passkey_registration(
        self, info: Info[Context, None], input: gql_passkeys.ConfirmPasskeyRegistrationInput
    ) -> ConfirmPasskeyRegistrationResult:
        admin = await info.context.mutating_admin()
        return _map(
            await info.context.keys.passkeys.confirm_registration(
                admin, input.registration_id, code=input.code, passkey_assertion=input.passkey_assertion
            )
        )

    @strawberry.mutation(description="Register the new passkey the browser made for a confirmed registration.")
    async def finish_passkey_registration(
        self, info: Info[Context, None], input: gql_passkeys.FinishPasskeyRegistrationInput
    ) -> FinishPasskeyRegistrationResult:
        admin = await info.context.mutating_admin()
        return _map(
            await info.context.keys.passkeys.finish_registration(
                admin, input.registration_id, name=input.name, credential=input.credential
            )
        )

    @strawberry.mutation(description="Rename one of your passkeys.")
    async def rename_passkey(self, info: Info[Context, None], input: gql_passkeys.RenamePasskeyInput) -> RenamePasskeyResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.passkeys.rename(admin, input.passkey_id, input.name))

    @strawberry.mutation(description="Remove one of your passkeys; it can no longer release keys.")
    async def remove_passkey(self, info: Info[Context, None], input: gql_passkeys.RemovePasskeyInput) -> RemovePasskeyResult:
        admin = await info.context.mutating_admin()
        return _map(await info.context.keys.passkeys.remove(admin, input.passkey_id))

    @strawberry.mutation(
        description="Create a named API token with an expiry. Its value is in this answer only; only a hash is stored.",
    )
    async def create_api_token(self, info: Info[Context, None], input: CreateApiTokenInput) -> CreateApiTokenResult:
        context = info.context
        admin = await context.mutating_admin()
        created = await context.api_tokens.create(admin, name=input.name, expires_at=input.expires_at)
        return map_token_result(created, context.clock.now(), context.token_id)

    @strawberry.mutation(description="Revoke one of your API tokens: the next request sent with it is refused.")
    async def revoke_api_token(self, info: Info[Context, None], input: RevokeApiTokenInput) -> RevokeApiTokenResult:
        context = info.context
        admin = await context.mutating_admin()
        revoked = await context.api_tokens.revoke(admin, input.id)
        return map_token_result(revoked, context.clock.now(), context.token_id)


def _should_mask(error: GraphQLError) -> bool:
    """Mask what we did not mean to say: exceptions from our code. Parse and validation errors
    and our ClientErrors stay as they are."""
    original = error.original_error
    return original is not None and not isinstance(original, (ClientError, GraphQLError))


class MaskUnexpectedErrors(MaskErrors):
    """Unexpected exceptions become ``Internal error.`` (INTERNAL_SERVER_ERROR); an unreachable
    database becomes a retryable SERVICE_UNAVAILABLE error. Both were logged before masking,
    by :class:`keyrelease.graphql.errors.Schema`."""

    def __init__(self) -> None:
        super().__init__(should_mask_error=_should_mask, error_message=errors.INTERNAL_MESSAGE)

    def _process_result(self, result: object) -> None:
        """MaskErrors' own, without its ``isinstance`` against a runtime-checkable Protocol
        (which walks the Protocol's members on every request): a result without errors, the
        usual one, is left as it is."""
        if getattr(result, "errors", None):
            result.errors = self._process_errors(result.errors)  # type: ignore[attr-defined]

    def anonymise_error(self, error: GraphQLError) -> GraphQLError:
        unavailable = errors.is_unavailable(error)
        return GraphQLError(
            UNAVAILABLE if unavailable else errors.INTERNAL_MESSAGE,
            error.nodes,
            path=error.path,
            extensions={"code": errors.SERVICE_UNAVAILABLE if unavailable else errors.INTERNAL},
        )


#: The documents the parser and validation caches keep, and the cheap operations remembered.
PARSED_DOCUMENTS = 256


def build_schema(
    *,
    introspection: bool = limits.INTROSPECTION,
    max_depth: int = limits.MAX_DEPTH,
    max_tokens: int = limits.MAX_TOKENS,
    max_cost: int = limits.MAX_COST,
) -> strawberry.Schema:
    # The validation rules are built once: the validation cache is keyed by the rule classes,
    # and QueryDepthLimiter/MaxAliasesLimiter would make new classes on every request, so
    # the cache would never hit (a third of a small query's time went to validation).
    # Shared by every request this schema serves:
    turns = AdminTurns()
    cheap = CheapOperations(size=PARSED_DOCUMENTS)
    parsed = parse_cache(PARSED_DOCUMENTS)
    rules: tuple[type[ASTValidationRule], ...] = (
        OneGuessPerRequest,
        depth_rule(max_depth, None, None),
        alias_rule(limits.MAX_ALIASES),
    )
    if not introspection:  # what Strawberry's DisableIntrospection adds, last
        rules += (NoSchemaIntrospectionCustomRule,)
    extensions: list = [
        lambda: DocumentCache(max_tokens=max_tokens, rules=rules, parsed=parsed),
        lambda: QueryCostLimit(max_cost=max_cost, page_bounds=(1, queries.MAX_PAGE), turns=turns, cheap=cheap),
        MaskUnexpectedErrors,
    ]
    return errors.Schema(
        query=Query,
        mutation=Mutation,
        extensions=extensions,
        config=StrawberryConfig(auto_camel_case=True),
    )

"""Passkeys (issue 17) through the real HTTP stack on SQLite and PostgreSQL, with a software
authenticator (keyrelease.testing.webauthn) standing in for the browser and the device: an
assertion releases exactly the key (code generation, rotation) it was made for, once, from our
origin, with user verification and a counter that moved forward; every failure is a wrong
code's, counted against the same attempts in the same window, also under parallel requests."""

from __future__ import annotations

import asyncio
import json

import pytest

from keyrelease.models import AdminEvent, AdminEventType, ApiKey, KeyEvent, ReleaseProof
from keyrelease.service.passkeys import NO_PASSKEY, set_release_proof
from keyrelease.service.results import GENERIC_VERIFICATION_ERROR
from keyrelease.testing.api import CODE_LINE, KEY_FIELDS, AdminUser, Api, released_key
from keyrelease.testing.processes import run_cli
from keyrelease.testing.settings import base_env
from keyrelease.testing.webauthn import SoftAuthenticator

START = """
mutation($input: StartPasskeyRegistrationInput!) {
  startPasskeyRegistration(input: $input) {
    __typename
    ... on PasskeyRegistration { registrationId codeExpiresAt requestOptions }
    ... on Error { message }
  }
}"""
RESEND = """
mutation($input: ResendPasskeyCodeInput!) {
  resendPasskeyCode(input: $input) { __typename ... on PasskeyRegistration { registrationId } ... on Error { message } }
}"""
CONFIRM = """
mutation($input: ConfirmPasskeyRegistrationInput!) {
  confirmPasskeyRegistration(input: $input) { __typename ... on PasskeyOptions { options } ... on Error { message } }
}"""
FINISH = """
mutation($input: FinishPasskeyRegistrationInput!) {
  finishPasskeyRegistration(input: $input) {
    __typename ... on Passkey { id name createdAt lastUsedAt } ... on Error { message } ... on ValidationError { field }
  }
}"""
REMOVE = """
mutation($input: RemovePasskeyInput!) { removePasskey(input: $input) { __typename ... on Passkey { id } ... on Error { message } } }"""
PASSKEYS = "query { passkeys { id name createdAt lastUsedAt } }"
BEGIN = """
mutation($input: BeginPasskeyVerificationInput!) {
  beginPasskeyVerification(input: $input) {
    __typename ... on PasskeyOptions { options } ... on Error { message } ... on ValidationError { field }
  }
}"""
VERIFY = f"""
mutation($input: VerifyKeyInput!) {{
  verifyKey(input: $input) {{ __typename ... on ApiKey {{ {KEY_FIELDS} }} ... on Error {{ message }} }}
}}"""
ROTATE = """
mutation($input: RotateKeyInput!) { rotateKey(input: $input) { __typename ... on Error { message } } }"""
CANCEL = """
mutation($input: CancelRotationInput!) { cancelRotation(input: $input) { __typename } }"""


def authenticator(api: Api) -> SoftAuthenticator:
    party = api.app.state.services.keys.passkeys.relying_party
    return SoftAuthenticator(rp_id=party.id, origin=party.origin)


async def passkey_code(api: Api, admin: AdminUser, nth: int = 1) -> str:
    mails = await api.mailbox.wait_for(lambda m: m.to == admin.email and "add a passkey" in m.subject, count=nth)
    match = CODE_LINE.search(mails[nth - 1].text)
    assert match, mails[nth - 1].text
    return match.group(1)


async def add_passkey(api: Api, admin: AdminUser, device: SoftAuthenticator, name: str = "Laptop") -> dict:
    """Register ``device`` for ``admin``, proven by the emailed code."""
    before = len([m for m in api.mailbox.messages if m.to == admin.email and "add a passkey" in m.subject])
    started = (await api.data(START, {"input": {"proof": "EMAIL"}}, admin.token))["startPasskeyRegistration"]
    assert started["__typename"] == "PasskeyRegistration", started
    code = await passkey_code(api, admin, before + 1)
    confirmed = await confirm(api, admin, started["registrationId"], code=code)
    assert confirmed["__typename"] == "PasskeyOptions", confirmed
    options = json.loads(confirmed["options"])
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["authenticatorSelection"]["residentKey"] == "preferred"
    finished = await finish(api, admin, started["registrationId"], device.register(confirmed["options"]), name)
    assert finished["__typename"] == "Passkey", finished
    return finished


async def confirm(api: Api, admin: AdminUser, registration_id: str, **proof: str) -> dict:
    variables = {"input": {"registrationId": registration_id, **proof}}
    return (await api.data(CONFIRM, variables, admin.token))["confirmPasskeyRegistration"]


async def finish(api: Api, admin: AdminUser, registration_id: str, credential: str, name: str = "Laptop") -> dict:
    variables = {"input": {"registrationId": registration_id, "name": name, "credential": credential}}
    return (await api.data(FINISH, variables, admin.token))["finishPasskeyRegistration"]


async def begin(api: Api, admin: AdminUser, key_id: str) -> str:
    answer = (await api.data(BEGIN, {"input": {"keyId": key_id}}, admin.token))["beginPasskeyVerification"]
    assert answer["__typename"] == "PasskeyOptions", answer
    return answer["options"]


async def verify(api: Api, admin: AdminUser, key_id: str, assertion: str) -> dict:
    variables = {"input": {"keyId": key_id, "passkeyAssertion": assertion}}
    return (await api.data(VERIFY, variables, admin.token))["verifyKey"]


async def admin_with_passkey(api: Api, proof: ReleaseProof = ReleaseProof.PASSKEY_OR_EMAIL) -> tuple[AdminUser, SoftAuthenticator]:
    ada = await api.admin()
    assert await set_release_proof(ada.institution, proof)
    device = authenticator(api)
    await add_passkey(api, ada, device)
    return ada, device


def failed(answer: dict) -> bool:
    return answer == {"__typename": "VerificationError", "message": GENERIC_VERIFICATION_ERROR}


async def test_a_passkey_registered_with_the_emailed_code_releases_the_key_it_was_made_for(api, clock):
    ada, device = await admin_with_passkey(api)
    listed = (await api.data(PASSKEYS, token=ada.token))["passkeys"]
    assert [(p["name"], p["lastUsedAt"]) for p in listed] == [("Laptop", None)]
    key = await api.create_key(ada, name="Dashboards")
    assert key["status"] == "PENDING_VERIFICATION"
    options = json.loads(await begin(api, ada, key["id"]))
    assert options["userVerification"] == "required"
    assert [c["id"] for c in options["allowCredentials"]] == [json.loads(device.register(await begin(api, ada, key["id"])))["id"]]
    clock.advance(minutes=1)
    verified = await verify(api, ada, key["id"], device.assertion(await begin(api, ada, key["id"])))
    assert verified["__typename"] == "ApiKey" and verified["status"] == "ACTIVE", verified
    assert (await api.reveal(ada, key["id"]))["__typename"] == "KeyCredentials"
    listed = (await api.data(PASSKEYS, token=ada.token))["passkeys"]
    assert listed[0]["lastUsedAt"] is not None
    events = [e.type for e in await AdminEvent.filter(admin__email=ada.email)]
    assert events == [AdminEventType.PASSKEY_ADDED]


async def test_an_assertion_for_key_a_verifies_neither_key_b_nor_a_after_a_new_nonce(api):
    ada, device = await admin_with_passkey(api)
    a = await api.create_key(ada, name="A")
    b = await api.create_key(ada, name="B")
    for_a = device.assertion(await begin(api, ada, a["id"]))
    await begin(api, ada, b["id"])
    assert failed(await verify(api, ada, b["id"], for_a))
    assert (await api.key(ada, b["id"]))["attemptsRemaining"] == 4
    await begin(api, ada, a["id"])  # a new nonce: the earlier challenge is gone
    assert failed(await verify(api, ada, a["id"], for_a))
    assert (await api.key(ada, a["id"]))["attemptsRemaining"] == 4
    assert (await verify(api, ada, a["id"], device.assertion(await begin(api, ada, a["id"]))))["status"] == "ACTIVE"


async def test_an_assertion_made_before_a_new_code_does_not_verify(api):
    ada, device = await admin_with_passkey(api)
    key = await api.create_key(ada, name="Resent")
    before = device.assertion(await begin(api, ada, key["id"]))
    assert (await api.resend(ada, key["id"]))["__typename"] == "ApiKey"
    assert failed(await verify(api, ada, key["id"], before))
    assert (await verify(api, ada, key["id"], device.assertion(await begin(api, ada, key["id"]))))["status"] == "ACTIVE"


async def test_an_assertion_works_once(api):
    ada, device = await admin_with_passkey(api)
    key = await api.create_key(ada, name="Once")
    assertion = device.assertion(await begin(api, ada, key["id"]))
    answers = await asyncio.gather(*(verify(api, ada, key["id"], assertion) for _ in range(4)))
    assert sorted(a["__typename"] for a in answers) == ["ApiKey", "VerificationError", "VerificationError", "VerificationError"]
    assert failed(await verify(api, ada, key["id"], assertion))  # and never again
    assert (await ApiKey.get(id=key["id"])).passkey_nonce is None


@pytest.mark.parametrize(
    "forged",
    [
        pytest.param({"origin": "https://evil.example"}, id="another-origin"),
        pytest.param({"user_verified": False}, id="no-user-verification"),
        pytest.param({"challenge": b"\x00" * 32}, id="another-challenge"),
    ],
)
async def test_an_assertion_from_another_origin_without_verification_or_unbound_is_a_wrong_code(api, forged):
    ada, device = await admin_with_passkey(api)
    key = await api.create_key(ada, name="Forged")
    options = await begin(api, ada, key["id"])
    assert failed(await verify(api, ada, key["id"], device.assertion(options, **forged)))
    shown = await api.key(ada, key["id"])
    assert shown["status"] == "PENDING_VERIFICATION" and shown["attemptsRemaining"] == 4
    assert (await verify(api, ada, key["id"], device.assertion(options)))["status"] == "ACTIVE"  # the nonce is still there


async def test_a_counter_that_went_backwards_is_refused(api):
    ada, device = await admin_with_passkey(api)
    a = await api.create_key(ada, name="Counter A")
    b = await api.create_key(ada, name="Counter B")
    assert (await verify(api, ada, a["id"], device.assertion(await begin(api, ada, a["id"]), counter=7)))["status"] == "ACTIVE"
    options = await begin(api, ada, b["id"])
    assert failed(await verify(api, ada, b["id"], device.assertion(options, counter=3)))  # a clone's
    assert failed(await verify(api, ada, b["id"], device.assertion(options, counter=7)))  # the same again
    assert (await verify(api, ada, b["id"], device.assertion(options, counter=8)))["status"] == "ACTIVE"


async def test_another_admins_passkey_does_not_verify(api):
    ada, _ = await admin_with_passkey(api)
    bob = await api.admin("bob@uni.example")
    bobs = authenticator(api)
    await add_passkey(api, bob, bobs)
    key = await api.create_key(ada, name="Ada's")
    assert failed(await verify(api, ada, key["id"], bobs.assertion(await begin(api, ada, key["id"]))))
    answer = (await api.data(BEGIN, {"input": {"keyId": key["id"]}}, bob.token))["beginPasskeyVerification"]
    assert failed(answer)  # not his key: the generic answer


async def test_passkey_failures_and_wrong_codes_share_the_five_attempts_and_the_window(api, clock):
    ada, device = await admin_with_passkey(api)
    key = await api.create_key(ada, name="Mixed")
    options = await begin(api, ada, key["id"])
    for n in range(4):
        wrong = device.assertion(options, user_verified=False) if n % 2 else "000000"
        answer = await verify(api, ada, key["id"], wrong) if n % 2 else await api.verify(ada, key["id"], wrong)
        assert failed(answer)
    assert failed(await verify(api, ada, key["id"], device.assertion(options, origin="https://evil.example")))
    shown = await api.key(ada, key["id"])
    assert shown["status"] == "LOCKED" and shown["attemptsRemaining"] == 0
    assert failed(await verify(api, ada, key["id"], device.assertion(options)))  # locked: a right one is refused
    late = await api.create_key(ada, name="Late")
    options = await begin(api, ada, late["id"])
    clock.advance(minutes=15)
    assert failed(await verify(api, ada, late["id"], device.assertion(options)))
    assert (await api.key(ada, late["id"]))["status"] == "LOCKED"


async def test_parallel_passkey_failures_count_exactly_five(api):
    ada, device = await admin_with_passkey(api)
    key = await api.create_key(ada, name="Parallel")
    options = await begin(api, ada, key["id"])
    forged = [device.assertion(options, origin=f"https://evil{n}.example") for n in range(12)]
    answers = await asyncio.gather(*(verify(api, ada, key["id"], f) for f in forged))
    assert all(failed(a) for a in answers)
    row = await ApiKey.get(id=key["id"])
    assert row.attempts_used == 5 and row.locked_at is not None
    assert await KeyEvent.filter(key_id=row.id, type="VERIFICATION_FAILED").count() == 5
    assert await KeyEvent.filter(key_id=row.id, type="LOCKED").count() == 1


async def test_a_rotation_is_released_by_a_passkey_bound_to_that_rotation(api):
    ada, device = await admin_with_passkey(api)
    key, old = await released_key(api, ada)
    assert (await api.data(ROTATE, {"input": {"keyId": key["id"]}}, ada.token))["rotateKey"]["__typename"] == "ApiKey"
    first = device.assertion(await begin(api, ada, key["id"]))
    assert (await api.data(CANCEL, {"input": {"keyId": key["id"]}}, ada.token))["cancelRotation"]["__typename"] == "ApiKey"
    assert (await api.data(ROTATE, {"input": {"keyId": key["id"]}}, ada.token))["rotateKey"]["__typename"] == "ApiKey"
    await begin(api, ada, key["id"])
    assert failed(await verify(api, ada, key["id"], first))  # made for the cancelled rotation
    verified = await verify(api, ada, key["id"], device.assertion(await begin(api, ada, key["id"])))
    assert verified["__typename"] == "ApiKey", verified
    new = await api.reveal(ada, key["id"])
    assert new["__typename"] == "KeyCredentials" and new["clientSecret"] != old["clientSecret"]


async def test_with_the_passkey_policy_no_code_is_emailed_and_only_an_assertion_releases(api):
    ada = await api.admin()
    assert await set_release_proof(ada.institution, ReleaseProof.PASSKEY)
    refused = await api.create_key(ada, name="Without a passkey")
    assert refused["__typename"] == "ValidationError" and refused["message"] == NO_PASSKEY
    device = authenticator(api)
    await add_passkey(api, ada, device)  # the first passkey is proven by the emailed code
    mails = len(api.mailbox.messages)
    key = await api.create_key(ada, name="Passkey only")
    assert key["__typename"] == "ApiKey"
    await asyncio.sleep(0)
    from keyrelease.models import OutboxMessage

    assert await OutboxMessage.filter(key_id=key["id"]).count() == 0
    assert len(api.mailbox.messages) == mails
    assert failed(await api.resend(ada, key["id"]))
    from keyrelease import codes

    right_code = codes.verification_code(api.app.state.services.settings.secret_key, ApiKey(id=key["id"]).id, 0)
    assert failed(await api.verify(ada, key["id"], right_code))  # even the derivable code does not release
    assert (await verify(api, ada, key["id"], device.assertion(await begin(api, ada, key["id"]))))["status"] == "ACTIVE"


async def test_with_the_email_policy_a_passkey_is_not_offered(api):
    ada, device = await admin_with_passkey(api, ReleaseProof.EMAIL)
    key = await api.create_key(ada, name="Email only")
    answer = (await api.data(BEGIN, {"input": {"keyId": key["id"]}}, ada.token))["beginPasskeyVerification"]
    assert answer["__typename"] == "ValidationError"


async def test_a_second_passkey_is_added_with_the_first_and_a_removed_one_releases_nothing(api, clock):
    ada, first = await admin_with_passkey(api)
    clock.advance(minutes=1)
    started = (await api.data(START, {"input": {"proof": "PASSKEY"}}, ada.token))["startPasskeyRegistration"]
    assert started["codeExpiresAt"] is None and started["requestOptions"]
    confirmed = await confirm(api, ada, started["registrationId"], passkeyAssertion=first.assertion(started["requestOptions"]))
    assert confirmed["__typename"] == "PasskeyOptions", confirmed
    second = authenticator(api)
    added = await finish(api, ada, started["registrationId"], second.register(confirmed["options"]), "Phone")
    assert added["__typename"] == "Passkey"
    again = await finish(api, ada, started["registrationId"], authenticator(api).register(confirmed["options"]), "Third")
    assert again["__typename"] == "ValidationError"  # the registration's challenge worked once
    listed = [p["name"] for p in (await api.data(PASSKEYS, token=ada.token))["passkeys"]]
    assert listed == ["Laptop", "Phone"]
    removed = (await api.data(REMOVE, {"input": {"passkeyId": added["id"]}}, ada.token))["removePasskey"]
    assert removed["__typename"] == "Passkey"
    key = await api.create_key(ada, name="After removal")
    assert failed(await verify(api, ada, key["id"], second.assertion(await begin(api, ada, key["id"]))))
    events = [(e.type, e.detail) for e in await AdminEvent.filter(admin__email=ada.email).order_by("id")]
    assert events == [
        (AdminEventType.PASSKEY_ADDED, "“Laptop”"),
        (AdminEventType.PASSKEY_ADDED, "“Phone”"),
        (AdminEventType.PASSKEY_REMOVED, "“Phone”"),
    ]


async def test_adding_a_passkey_takes_the_codes_rules(api, clock):
    ada = await api.admin()
    started = (await api.data(START, {"input": {"proof": "EMAIL"}}, ada.token))["startPasskeyRegistration"]
    registration = started["registrationId"]
    first = await passkey_code(api, ada)
    resent = (await api.data(RESEND, {"input": {"registrationId": registration}}, ada.token))["resendPasskeyCode"]
    assert resent["__typename"] == "PasskeyRegistration"
    second = await passkey_code(api, ada, 2)
    if first != second:
        assert failed(await confirm(api, ada, registration, code=first))  # superseded
    else:
        assert failed(await confirm(api, ada, registration, code="000000" if first != "000000" else "111111"))
    clock.advance(minutes=5, seconds=1)
    assert failed(await confirm(api, ada, registration, code=second))  # expired
    wrong = "000000" if second != "000000" else "111111"
    answers = await asyncio.gather(*(confirm(api, ada, registration, code=wrong) for _ in range(6)))
    assert all(failed(a) for a in answers)
    resent = (await api.data(RESEND, {"input": {"registrationId": registration}}, ada.token))["resendPasskeyCode"]
    assert failed(resent)  # locked after five
    from keyrelease.models import PasskeyEnrollment

    row = await PasskeyEnrollment.get(id=registration)
    assert row.attempts_used == 5 and row.locked_at is not None


async def test_set_policy_on_the_command_line_turns_passkeys_on(api, database_url, tmp_path):
    ada = await api.admin()
    env = base_env(tmp_path, KEYRELEASE_DATABASE_URL=database_url)
    done = await asyncio.to_thread(
        run_cli, env, "institution", "set-policy", "--institution", ada.institution, "--verification", "passkey"
    )
    assert done.returncode == 0, done.stderr
    assert "released by passkey" in done.stdout and "Add a passkey" in done.stdout
    refused = await api.create_key(ada, name="Needs a passkey")
    assert refused["__typename"] == "ValidationError" and refused["message"] == NO_PASSKEY
    unknown = await asyncio.to_thread(
        run_cli, env, "institution", "set-policy", "--institution", "Nowhere", "--verification", "email"
    )
    assert unknown.returncode == 2 and "no institution is named 'Nowhere'" in unknown.stderr


async def test_an_assertion_confirms_only_the_registration_it_was_made_for(api):
    ada, device = await admin_with_passkey(api)
    one = (await api.data(START, {"input": {"proof": "PASSKEY"}}, ada.token))["startPasskeyRegistration"]
    two = (await api.data(START, {"input": {"proof": "PASSKEY"}}, ada.token))["startPasskeyRegistration"]
    for_one = device.assertion(one["requestOptions"])
    assert failed(await confirm(api, ada, two["registrationId"], passkeyAssertion=for_one))
    assert (await confirm(api, ada, one["registrationId"], passkeyAssertion=for_one))["__typename"] == "PasskeyOptions"
    replayed = await confirm(api, ada, one["registrationId"], passkeyAssertion=for_one)
    assert failed(replayed)  # confirmed once: its nonce is gone


async def test_an_admin_has_at_most_ten_passkeys(api, clock):
    from keyrelease.service.passkeys import MAX_PASSKEYS

    ada, device = await admin_with_passkey(api)
    for n in range(MAX_PASSKEYS - 1):
        clock.advance(minutes=1)
        started = (await api.data(START, {"input": {"proof": "PASSKEY"}}, ada.token))["startPasskeyRegistration"]
        confirmed = await confirm(api, ada, started["registrationId"], passkeyAssertion=device.assertion(started["requestOptions"]))
        added = await finish(api, ada, started["registrationId"], authenticator(api).register(confirmed["options"]), f"Key {n}")
        assert added["__typename"] == "Passkey", added
    refused = (await api.data(START, {"input": {"proof": "EMAIL"}}, ada.token))["startPasskeyRegistration"]
    assert refused["__typename"] == "ValidationError" and "remove one first" in refused["message"]
    assert len((await api.data(PASSKEYS, token=ada.token))["passkeys"]) == MAX_PASSKEYS


async def test_a_partner_key_released_by_a_passkey_sends_the_partner_its_password(api):
    ada, device = await admin_with_passkey(api, ReleaseProof.PASSKEY)
    key = await api.create_key(ada, name="For a partner", kind="PARTNER", partnerName="Pat", partnerEmail="pat@partner.example")
    assert key["__typename"] == "ApiKey", key
    other = await api.create_key(ada, name="Other partner", kind="PARTNER", partnerEmail="other@partner.example")
    options = await begin(api, ada, key["id"])
    await begin(api, ada, other["id"])
    assert failed(await verify(api, ada, other["id"], device.assertion(options)))  # bound to the partner key it was made for
    assert (await verify(api, ada, key["id"], device.assertion(options)))["status"] == "ACTIVE"
    otp = await api.otp_for("pat@partner.example")
    assert (await api.reveal(None, key["id"], otp))["__typename"] == "KeyCredentials"


async def test_parallel_passkey_failures_on_a_rotation_count_exactly_five_and_lock_the_rotation_only(api):
    from keyrelease.models import KeyRotation

    ada, device = await admin_with_passkey(api)
    key, old = await released_key(api, ada)
    assert (await api.data(ROTATE, {"input": {"keyId": key["id"]}}, ada.token))["rotateKey"]["__typename"] == "ApiKey"
    options = await begin(api, ada, key["id"])
    forged = [device.assertion(options, user_verified=False) for _ in range(10)]
    answers = await asyncio.gather(*(verify(api, ada, key["id"], f) for f in forged))
    assert all(failed(a) for a in answers)
    rotation = await KeyRotation.get(key_id=key["id"])
    assert rotation.attempts_used == 5 and rotation.locked_at is not None and rotation.open_key_id is None
    assert (await api.key(ada, key["id"]))["status"] == "ACTIVE"  # the key keeps its old secret


async def test_an_assertion_made_before_a_rotations_new_code_does_not_verify_it(api):
    ada, device = await admin_with_passkey(api)
    key, _ = await released_key(api, ada)
    assert (await api.data(ROTATE, {"input": {"keyId": key["id"]}}, ada.token))["rotateKey"]["__typename"] == "ApiKey"
    before = device.assertion(await begin(api, ada, key["id"]))
    assert (await api.resend(ada, key["id"]))["__typename"] == "ApiKey"
    assert failed(await verify(api, ada, key["id"], before))
    assert (await verify(api, ada, key["id"], device.assertion(await begin(api, ada, key["id"]))))["__typename"] == "ApiKey"


async def test_parallel_wrong_codes_and_passkey_failures_together_count_exactly_five(api):
    ada, device = await admin_with_passkey(api)
    key, code = await api.create_key_with_code(ada, name="Both at once")
    wrong = "000000" if code != "000000" else "111111"
    options = await begin(api, ada, key["id"])
    tries = [api.verify(ada, key["id"], wrong) for _ in range(6)]
    tries += [verify(api, ada, key["id"], device.assertion(options, origin="https://evil.example")) for _ in range(6)]
    assert all(failed(a) for a in await asyncio.gather(*tries))
    row = await ApiKey.get(id=key["id"])
    assert row.attempts_used == 5 and row.locked_at is not None
    assert await KeyEvent.filter(key_id=row.id, type="LOCKED").count() == 1
    assert failed(await api.verify(ada, key["id"], code))  # the right code, too late

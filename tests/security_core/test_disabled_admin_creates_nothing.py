"""An admin disabled after their token was accepted creates nothing (createKey re-checks,
under the admin's lock, and answers SignInRefused), and one disabled admin refuses no one else."""

from __future__ import annotations

from keyrelease.models import Admin, ApiKey, KeyKind
from keyrelease.service.offboarding import disable_admin
from keyrelease.service.results import SignInRefused


async def test_a_disabled_admin_creates_nothing_and_other_admins_still_can(api, clock):
    ada = await api.admin()
    bob = await api.admin("bob@uni.example")
    signed_in = await Admin.get(email=ada.email)  # as the token check found them, a moment earlier
    await disable_admin(clock, ada.email)
    keys = api.app.state.services.keys
    assert await keys.create_key(signed_in, name="Too late", kind=KeyKind.INSTITUTIONAL) == SignInRefused()
    assert await ApiKey.filter(created_by_id=signed_in.id).count() == 0
    assert (await api.create_key(bob))["__typename"] == "ApiKey"

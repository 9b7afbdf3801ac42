async def test_institutional_key_create_verify_reveal(api):
    ada = await api.admin()
    key = await api.create_key(ada)
    assert key["status"] == "PENDING_VERIFICATION"
    code = await api.code_for(ada)
    verified = await api.verify(ada, key["id"], code)
    assert verified["status"] == "ACTIVE", verified
    creds = await api.reveal(ada, key["id"])
    assert creds["__typename"] == "KeyCredentials"
    again = await api.reveal(ada, key["id"])
    assert again["__typename"] == "VerificationError"

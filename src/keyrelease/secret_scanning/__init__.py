"""Secret scanning: GitHub's partner program reports leaked client secrets here.

:mod:`.public_keys` reads and checks GitHub's signing keys (framework-free, used by the
settings at start-up); :mod:`.github` is the thin HTTP endpoint ``POST /secret-scanning/github``.
The rules are in :mod:`keyrelease.service.leaks`.
"""

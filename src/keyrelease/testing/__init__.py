"""Helpers for testing keyrelease, shipped with it (as ``starlette.testclient`` is): for the
test suite, the benchmark harness and a deployment's own checks. Nothing in the service
imports them.

- :mod:`keyrelease.testing.mail`: the ``memory`` mail transport (a list, and a way to wait on it).
- :mod:`keyrelease.testing.settings`: the environment of a service under test.
- :mod:`keyrelease.testing.api`: GraphQL over the real HTTP stack, the flow step by step, its mail.
- :mod:`keyrelease.testing.tokens`: requests to the token endpoint.
- :mod:`keyrelease.testing.processes`: real ``keyrelease`` processes (and any other server) on a
  free port, for the tests that need one and for the benchmark.
- :mod:`keyrelease.testing.postgres`: scratch PostgreSQL databases.
"""

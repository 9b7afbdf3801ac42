"""What keyrelease's own tests and benchmark use to drive it, shipped with the package the way
Starlette ships ``starlette.testclient``; production code never imports it.

- :mod:`keyrelease.testing.mail`: the ``memory`` mail transport (a list, and a way to wait on it).
- :mod:`keyrelease.testing.settings`: the environment of a service under test.
- :mod:`keyrelease.testing.api`: GraphQL over the real HTTP stack, the flow step by step, its mail.
- :mod:`keyrelease.testing.tokens`: requests to the token endpoint.
- :mod:`keyrelease.testing.processes`: real ``keyrelease`` processes (and any other server) on a
  free port, for the tests that need one and for the benchmark.
"""

"""Helpers for testing keyrelease, shipped with it (as ``starlette.testclient`` is): for the
test suite, the benchmark harness and a deployment's own checks. Nothing in the service
imports them."""

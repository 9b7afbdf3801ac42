"""Counts of generated cases, printed at the end of the test run (see conftest.py)."""

COUNTS: dict[str, int] = {}

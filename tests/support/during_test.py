"""A guard for helpers that make something time-limited (a token, a lease, a deadline).

Such a value made when a module is imported starts its lifetime at collection, minutes (in a slow run, tens of
minutes) before the test that uses it, and can expire under it: the suite then fails for how long it took, not for
what it tests. pytest sets ``PYTEST_CURRENT_TEST`` during each test's setup, call and teardown and at no other time,
so a helper that calls ``require_a_running_test()`` refuses to run at import.
"""

from __future__ import annotations

import os


def require_a_running_test(what: str) -> None:
    if "PYTEST_CURRENT_TEST" not in os.environ:
        raise RuntimeError(f"make {what} inside a test or fixture, not when a module is imported: it would expire")

"""The suite passes however long it runs: helpers that make time-limited values refuse to run at import time."""

from __future__ import annotations

import pytest

from tests.gateway.conftest import token


def test_a_token_helper_refuses_to_run_outside_a_test(monkeypatch: pytest.MonkeyPatch) -> None:
    assert token(("toy", "1")).count(".") == 2  # inside a test it signs
    monkeypatch.delenv("PYTEST_CURRENT_TEST")  # as at import, during collection
    with pytest.raises(RuntimeError, match="not when a module is imported"):
        token(("toy", "1"))

"""``RestartPolicy`` and ``Restarts``: the backoff a supervisor waits before starting a dead process again.

The time is an argument, so each case states the uptimes it means instead of waiting for them.
"""

from __future__ import annotations

import pytest

from legion.hosting.supervisor import RestartPolicy, Restarts

POLICY = RestartPolicy(initial_delay_s=0.5, max_delay_s=3.0, reset_after_s=60.0, max_rapid_failures=5)


def deaths(restarts: Restarts, uptimes: list[float]) -> list[float | None]:
    """The delays ``restarts`` answers for processes that each ran ``uptime`` seconds, one after the other."""
    delays: list[float | None] = []
    now = 1000.0
    for uptime in uptimes:
        restarts.started(now)
        now += uptime
        delays.append(restarts.died(now))
        now += delays[-1] or 0.0
    return delays


def test_rapid_deaths_double_the_wait_up_to_the_cap_then_give_up() -> None:
    restarts = Restarts(POLICY)
    assert deaths(restarts, [1.0, 1.0, 1.0, 1.0]) == [0.5, 1.0, 2.0, 3.0]
    assert restarts.rapid_failures == 4
    assert deaths(restarts, [1.0]) == [None]  # the fifth rapid death in a row


def test_a_process_that_stayed_up_starts_the_count_over() -> None:
    restarts = Restarts(POLICY)
    assert deaths(restarts, [1.0, 1.0, 1.0, 1.0]) == [0.5, 1.0, 2.0, 3.0]
    assert deaths(restarts, [60.0]) == [0.5]  # healthy for the reset window: back to the first wait
    assert restarts.rapid_failures == 0
    assert deaths(restarts, [1.0, 1.0, 1.0, 1.0, 1.0]) == [0.5, 1.0, 2.0, 3.0, None]


def test_one_rapid_failure_allowed_gives_up_at_the_first() -> None:
    restarts = Restarts(RestartPolicy(max_rapid_failures=1))
    assert deaths(restarts, [120.0, 1.0]) == [0.5, None]


@pytest.mark.parametrize(
    "values",
    [
        {"initial_delay_s": 0.0},
        {"initial_delay_s": 5.0, "max_delay_s": 1.0},
        {"reset_after_s": 0.0},
        {"max_rapid_failures": 0},
    ],
)
def test_a_policy_that_cannot_work_is_refused(values: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="a restart policy needs"):
        RestartPolicy(**values)  # type: ignore[arg-type]  # the values are of the right types

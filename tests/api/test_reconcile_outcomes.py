"""Outcomes as values: a step that changed the status on its way (a job's reset) says both changes in one outcome."""

from __future__ import annotations

from legion.api.reconcile import Done, Failed, Gone, Retry, Settled
from legion.api.reconcile.outcomes import after
from legion.core.resources import ModelTrainingStatus, StatusPatch

RESET = StatusPatch(ModelTrainingStatus(state="scheduling", exit_code=None, artifacts=[]))


def test_after_puts_the_earlier_patch_under_the_outcomes_own() -> None:
    running = StatusPatch(ModelTrainingStatus(state="running", process_id=7))
    outcome = after(RESET, Retry(1.5, running))
    assert isinstance(outcome, Retry)
    assert outcome.delay_s == 1.5
    assert outcome.status is not None
    assert outcome.status.apply({"exitCode": 3}) == {"state": "running", "artifacts": [], "processId": 7}


def test_after_keeps_the_kind_of_outcome_and_an_empty_one_gets_the_earlier_patch() -> None:
    failed = StatusPatch(ModelTrainingStatus(state="failed", reason="no git"))
    assert after(RESET, Failed(failed)) == Failed(RESET.then(failed))
    assert after(RESET, Retry(2.0)) == Retry(2.0, RESET)
    assert after(RESET, Settled()) == Settled(RESET)
    assert after(RESET, Done()) == Done(RESET)
    assert after(RESET, Gone()) == Gone()

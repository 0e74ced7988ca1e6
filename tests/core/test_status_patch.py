"""``StatusPatch``: the one set of rules by which a reconcile step's status change is merged into a stored status."""

from __future__ import annotations

import pytest

from legion.core.resources import (
    ModelDeploymentStatus,
    ModelPackagingStatus,
    ModelTrainingStatus,
    StatusPatch,
    TrainingResult,
)


def test_given_fields_replace_none_removes_and_the_rest_stays() -> None:
    current = {"state": "Processing", "replicas": 1, "serviceURL": "http://a", "message": "starting"}
    patch = StatusPatch(ModelDeploymentStatus(state="Ready", available_replicas=1, message=None))
    assert patch.apply(current) == {"state": "Ready", "replicas": 1, "serviceURL": "http://a", "availableReplicas": 1}
    assert current["message"] == "starting"  # the stored status is not changed in place


def test_fields_use_wire_names_and_json_values() -> None:
    patch = StatusPatch(ModelDeploymentStatus(service_url="http://a", observed_generation=None, endpoints=["x"]))
    assert patch.fields() == {"serviceURL": "http://a", "observedGeneration": None, "endpoints": ["x"]}


@pytest.mark.parametrize(
    ("patch", "kept"),
    [
        (StatusPatch(ModelDeploymentStatus(state="Failed", reason="no model")), True),
        (StatusPatch(ModelDeploymentStatus(state="Processing", reason="a port race")), False),
        (StatusPatch(ModelTrainingStatus(state="failed", reason="exit code 3")), True),
        (StatusPatch(ModelPackagingStatus(state="running", reason="stale")), False),
    ],
    ids=["deployment Failed", "deployment Processing", "training failed", "packaging running"],
)
def test_a_reason_is_kept_only_in_the_kinds_failed_state(patch: StatusPatch, kept: bool) -> None:
    assert ("reason" in patch.apply({})) is kept


def test_leaving_the_failed_state_drops_the_stored_reason() -> None:
    patch = StatusPatch(ModelTrainingStatus(state="scheduling"))
    assert patch.apply({"state": "failed", "reason": "exit code 3"}) == {"state": "scheduling"}


def test_nested_values_lose_their_empty_fields() -> None:
    made = TrainingResult(artifact_name="wine-1", commit_id=None, run_id="t1")
    patch = StatusPatch(ModelTrainingStatus(state="succeeded", artifacts=[made]))
    assert patch.apply({})["artifacts"] == [{"artifactName": "wine-1", "runId": "t1"}]


def test_then_makes_one_patch_where_the_later_fields_win() -> None:
    reset = StatusPatch(ModelTrainingStatus(state="scheduling", exit_code=None, artifacts=[]))
    started = StatusPatch(ModelTrainingStatus(state="running", observed_generation=2))
    both = reset.then(started)
    assert both.fields() == {"state": "running", "exitCode": None, "artifacts": [], "observedGeneration": 2}
    stored = {"state": "succeeded", "exitCode": 0, "artifacts": [{"artifactName": "a"}], "observedGeneration": 1}
    assert both.apply(stored) == started.apply(reset.apply(stored))


def test_then_refuses_patches_of_two_kinds() -> None:
    with pytest.raises(TypeError, match="ModelDeploymentStatus"):
        StatusPatch(ModelTrainingStatus(state="running")).then(StatusPatch(ModelDeploymentStatus(state="Ready")))

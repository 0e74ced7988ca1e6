"""Acceptance of the management API, through the CLI only: the census example from its ModelTraining YAML.

apply the manifests (train → package → deploy, waiting for each) → the trained model is in the registry with its
accuracy → the training's log is there → the deployment is Ready with 2 replicas → ``legion model invoke``
answers → ``scale`` to 1 → ``delete`` → no replica process is left.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.test_deployment_journey import Journey, alive
from tests.support.server import wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]
MANIFESTS = ROOT / "examples" / "census_income" / "legion.yaml"


@pytest.fixture
def journey(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Journey]:
    monkeypatch.chdir(ROOT)  # the manifests' local paths are read from where the API runs
    trip = Journey(tmp_path / "legion", deployment="census-income")
    trip.start()
    try:
        yield trip
    finally:
        trip.legion("delete", "dep", "census-income")
        wait_until(lambda: not any(alive(p) for p in trip.pids()), 60, "every replica to stop")
        trip.stop()


def test_census_from_its_training_yaml_to_a_deployment_that_answers(journey: Journey) -> None:
    applied = journey.legion("apply", "-f", str(MANIFESTS), "--wait", "--timeout", "300")
    assert applied.exit_code == 0, applied.output
    assert "7 created, 0 changed, 0 unchanged" in applied.stdout
    assert "ModelTraining census-income: succeeded" in applied.stderr

    models = journey.legion("model", "list", "-o", "json")
    [model] = json.loads(models.stdout)
    assert (model["name"], model["version"], model["source"]) == ("census-income", "1.0", "census-income")
    assert model["metrics"]["accuracy"] > 0.8
    assert model["deployments"] == ["census-income"]  # the packaged model is the trained one: not registered twice
    info = journey.legion("model", "info", "census-income", "-o", "json")  # the deployment's model, from the API
    assert info.exit_code == 0, info.output
    manifest = json.loads(info.stdout)
    assert (manifest["name"], manifest["version"]) == ("census-income", "1.0")
    assert manifest["metrics"]["accuracy"] > 0.8
    assert "registered (source census-income); deployed in census-income" in info.stderr

    log = journey.legion("logs", "train", "census-income")
    assert log.exit_code == 0 and "held-out accuracy" in log.stdout
    replicas = journey.legion("logs", "dep", "census-income")
    assert {line.split("]")[0] for line in replicas.stdout.splitlines()} == {"[replica-1", "[replica-2"}
    no_log = journey.legion("logs", "conn", "census-data")
    assert no_log.exit_code == 2 and "Connection objects have no log" in no_log.output

    assert journey.ready_with(2)
    request = json.loads((ROOT / "examples" / "census_income" / "request.json").read_text())
    invoked = journey.legion("model", "invoke", "census-income", "--json", json.dumps(request))
    assert invoked.exit_code == 0, invoked.output
    answer = json.loads(invoked.stdout)
    assert answer["columns"] == ["<=50K", ">50K"]
    assert answer["prediction"][0][1] > 0.5  # the example row earns more than 50K

    before = set(journey.pids())
    scaled = journey.legion("scale", "census-income", "--replicas", "1", "--wait")
    assert scaled.exit_code == 0, scaled.output
    wait_until(lambda: journey.ready_with(1), 60, "one replica")
    gone = before - set(journey.pids())
    assert len(gone) == 1
    wait_until(lambda: not any(alive(p) for p in gone), 30, "the scaled-down replica to stop")

    left = journey.pids()
    assert journey.legion("delete", "dep", "census-income").exit_code == 0
    wait_until(lambda: not any(alive(p) for p in left), 60, "the last replica to stop")


def test_a_failing_training_is_a_cli_error_with_its_exit_code(journey: Journey, tmp_path: Path) -> None:
    source = tmp_path / "broken"
    source.mkdir()
    (source / "train.py").write_text("import sys\nprint('reading data', flush=True)\nsys.exit(7)\n")
    manifest = tmp_path / "broken.yaml"
    manifest.write_text(
        "kind: ToolchainIntegration\nid: python\nspec: {entrypoint: python}\n---\n"
        f"kind: ModelTraining\nid: broken\nspec: {{model: {{name: b, version: '1'}}, toolchain: python, "
        f"localPath: {source}, entrypoint: train.py}}\n"
    )
    applied = journey.legion("apply", "-f", str(manifest), "--wait", "--timeout", "120")
    assert applied.exit_code != 0
    assert "ModelTraining broken failed with exit code 7" in applied.stderr
    assert "reading data" in applied.stderr
    logged = journey.legion("logs", "-f", "train", "broken")
    assert logged.stdout == "reading data\n"

"""A user's journey through the CLI against a real API with the local runtime: deploy a model with 2 replicas,
call it, survive a killed replica and an API restart (nothing orphaned, nothing lost), scale, delete."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest
from click.testing import CliRunner, Result

from legion.cli.main import cli
from legion.model import ModelBuilder
from tests.api.conftest import cli_token, start_api
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.slow


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return not Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1].startswith("Z")


@pytest.fixture
def model(tmp_path: Path) -> Path:
    builder = ModelBuilder("doubler", "1")
    builder.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    return builder.save(tmp_path / "model")


class Journey:
    def __init__(self, data_dir: Path, deployment: str = "doubler") -> None:
        self.data_dir = data_dir
        self.deployment_id = deployment
        self.server: ServerProcess | None = None
        self.token = ""

    def start(self) -> None:
        self.server = start_api(self.data_dir, "--runtime", "local")
        self.token = self.token or cli_token(self.data_dir, "admin")

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    def legion(self, *args: str) -> Result:
        assert self.server is not None
        env = {"LEGION_API_URL": self.server.url, "LEGION_API_TOKEN": self.token,
               "LEGION_CONFIG_FILE": str(self.data_dir / "cli.yaml")}  # fmt: skip
        return CliRunner(env=env).invoke(cli, list(args))

    def deployment(self) -> dict[str, object]:
        result = self.legion("get", "dep", self.deployment_id, "-o", "json")
        assert result.exit_code == 0, result.output
        document: dict[str, object] = json.loads(result.stdout)
        return document

    def status(self) -> dict[str, object]:
        status = self.deployment().get("status", {})
        assert isinstance(status, dict)
        return status

    def pids(self) -> list[int]:
        state = self.data_dir / "runtime" / "deployments" / self.deployment_id / "state.json"
        if not state.exists():
            return []
        return sorted(r["pid"] for r in json.loads(state.read_text())["replicas"])

    def ready_with(self, replicas: int) -> bool:
        status = self.status()
        return status.get("state") == "Ready" and status.get("availableReplicas") == replicas == len(self.pids())


@pytest.fixture
def journey(tmp_path: Path) -> Iterator[Journey]:
    trip = Journey(tmp_path / "legion")
    trip.start()
    try:
        yield trip
    finally:
        if trip.server is None:
            trip.start()
        trip.legion("delete", "dep", "doubler")
        wait_until(lambda: not any(alive(p) for p in trip.pids()), 60, "every replica to stop")
        trip.stop()


def manifest(path: Path, model: Path, replicas: int) -> str:
    path.write_text(f"kind: ModelDeployment\nid: doubler\nspec: {{image: {model}, minReplicas: {replicas}}}\n")
    return str(path)


def test_deploy_call_recover_restart_scale_delete(journey: Journey, model: Path, tmp_path: Path) -> None:
    applied = journey.legion("apply", "-f", manifest(tmp_path / "dep.yaml", model, 2))
    assert applied.exit_code == 0, applied.output
    wait_until(lambda: journey.ready_with(2), 120, "2 ready replicas")

    url = journey.status()["serviceURL"]
    answer = httpx.post(f"{url}/api/model/invoke", json={"columns": ["a"], "data": [[21]]})
    assert answer.json()["prediction"] == [[42]]

    victim, survivor = journey.pids()
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: journey.ready_with(2) and victim not in journey.pids(), 120, "the killed replica replaced")
    assert survivor in journey.pids()

    before = journey.deployment()
    pids = journey.pids()
    assert journey.server is not None
    journey.server.process.send_signal(signal.SIGTERM)
    journey.server.process.wait(60)
    journey.stop()
    assert all(alive(p) for p in pids)  # replicas outlive the API ...
    journey.start()
    wait_until(lambda: journey.ready_with(2), 60, "Ready again after the restart")
    assert journey.pids() == pids  # ... and are adopted: none orphaned, none started twice
    assert journey.deployment()["spec"] == before["spec"]

    journey.legion("apply", "-f", manifest(tmp_path / "dep.yaml", model, 1))
    wait_until(lambda: journey.ready_with(1), 60, "scaled to 1")
    assert sum(alive(p) for p in pids) == 1

    deleted = journey.legion("delete", "dep", "doubler")
    assert deleted.exit_code == 0, deleted.output
    wait_until(lambda: journey.legion("get", "dep", "doubler").exit_code == 3, 60, "the deployment to be gone")
    assert not any(alive(p) for p in pids)


def test_era_a_shortcuts_registry_and_wait(journey: Journey, model: Path) -> None:
    imported = journey.legion("model", "import", str(model))
    assert imported.exit_code == 0, imported.output
    assert "model doubler:1 registered" in imported.stdout
    deployed = journey.legion("deploy", "doubler", "--image", str(model), "--replicas", "1", "--wait")
    assert deployed.exit_code == 0, deployed.output
    assert "ready at http://127.0.0.1:" in deployed.stdout
    assert "doubler: Ready 1/1" in deployed.stderr
    registry = json.loads(journey.legion("model", "list", "-o", "json").stdout)
    assert [(m["name"], m["version"], m["deployments"]) for m in registry] == [("doubler", "1", ["doubler"])]
    scaled = journey.legion("scale", "doubler", "--replicas", "2", "--wait")
    assert scaled.exit_code == 0, scaled.output
    inspected = journey.legion("inspect").stdout.splitlines()
    assert any(line.split()[:3] == ["doubler", "Ready", "2/2"] for line in inspected), inspected
    token = journey.legion("generate-token", "--model", "doubler:1")
    assert token.exit_code == 0 and token.stdout.count(".") == 2
    broken = journey.legion("deploy", "broken", "--image", str(model.parent / "missing"), "--wait", "--timeout", "60")
    assert broken.exit_code == 1
    assert "deployment broken failed: image" in broken.output
    assert journey.legion("undeploy", "broken").exit_code == 0
    assert journey.legion("undeploy", "doubler").exit_code == 0
    wait_until(lambda: journey.legion("get", "dep", "doubler").exit_code == 3, 60, "the deployment to be gone")

"""Acceptance of "properties belong to the ModelDeployment" (issue 17, point 2), with the summation example.

The real API with the local runtime and the real gateway: the example is deployed with 2 replicas, a data
scientist sets its ``multiplier`` with ``legion model property set``, and then every call through the gateway — so
on either replica — answers with the new value; the gateway refuses to pass a property write on, even with a valid
model token; a replica killed by its pid comes back holding the value (it comes from the platform, not from the
replica's memory); a viewer may read the properties but not set them.
"""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner, Result

from legion.cli.main import cli
from legion.client import LegionClient
from tests.api.conftest import cli_token, start_api
from tests.e2e.test_deployment_journey import alive
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.slow
DEADLINE_S = 120.0
CALLS = 40
ADD = {"columns": ["a", "b"], "data": [[1, 2]]}  # (1 + 2) * multiplier


@dataclass
class Platform:
    data_dir: Path
    api: ServerProcess
    gateway: ServerProcess
    scientist: str
    viewer: str

    def legion(self, *args: str, token: str | None = None) -> Result:
        env = {"LEGION_API_URL": self.api.url, "LEGION_API_TOKEN": token or self.scientist,
               "LEGION_CONFIG_FILE": str(self.data_dir.parent / "cli.yaml")}  # fmt: skip
        return CliRunner(env=env).invoke(cli, list(args))

    def status(self) -> dict[str, Any]:
        with LegionClient(self.api.url, self.scientist) as session:
            found: dict[str, Any] = session.get("/model/deployment", "summation").get("status", {})
        return found

    def pids(self) -> list[int]:
        state = self.data_dir / "runtime" / "deployments" / "summation" / "state.json"
        return sorted(r["pid"] for r in json.loads(state.read_text())["replicas"]) if state.exists() else []

    def ready_with_two(self) -> bool:
        status = self.status()
        return status.get("state") == "Ready" and len(status.get("endpoints", [])) == 2 == len(self.pids())


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    data_dir = tmp_path / "legion"
    api = start_api(data_dir, "--runtime", "local")
    gateway: ServerProcess | None = None
    try:
        command = [sys.executable, "-m", "legion", "gateway", "--port", "0", "--api-url", api.url,
                   "--keys-file", str(data_dir / "keys.json"), "--log-dir", str(tmp_path / "gateway-logs"),
                   "--log-buffer-dir", str(tmp_path / "gateway-buffer")]  # fmt: skip
        gateway = ServerProcess(tmp_path, command=command)
        gateway.wait_ready(path="/healthcheck")
        running = Platform(data_dir, api, gateway, cli_token(data_dir, "data-scientist"), cli_token(data_dir, "viewer"))
        yield running
        running.legion("delete", "dep", "summation")
        wait_until(lambda: not any(alive(p) for p in running.pids()), 60, "every replica to stop")
    finally:
        if gateway is not None:
            gateway.stop()
        api.stop()


def test_a_property_set_through_the_cli_reaches_every_replica_and_survives_a_restart(
    platform: Platform, summation_model_dir: Path, tmp_path: Path
) -> None:
    manifest = tmp_path / "summation.yaml"
    manifest.write_text(
        f"kind: ModelDeployment\nid: summation\nspec: {{image: {summation_model_dir}, minReplicas: 2}}\n"
    )
    applied = platform.legion("apply", "-f", str(manifest))
    assert applied.exit_code == 0, applied.output
    wait_until(platform.ready_with_two, DEADLINE_S, "2 ready replicas")
    with LegionClient(platform.api.url, platform.scientist) as session:
        token = session.model_token([{"name": "summation", "version": "1.0"}])["token"]
    invoke = f"{platform.gateway.url}/model/summation/api/model/invoke"
    headers = {"Authorization": f"Bearer {token}"}

    def results(count: int) -> list[int]:
        with httpx.Client(timeout=30) as client:
            answers = [client.post(invoke, headers=headers, json=ADD) for _ in range(count)]
        assert all(a.status_code == 200 for a in answers), [a.text for a in answers]
        return [a.json()["prediction"][0]["result"] for a in answers]

    wait_until(lambda: results(1) == [3], DEADLINE_S, "the gateway to route to the deployment")

    changed = platform.legion("model", "property", "set", "summation", "multiplier", "10")
    assert changed.exit_code == 0, changed.output
    assert changed.stdout == "deployment summation: multiplier = 10\n"
    wait_until(lambda: results(4) == [30] * 4, 30, "the new multiplier in every answer", interval_s=0.05)
    assert results(CALLS) == [30] * CALLS  # both replicas: no more 30 and 3 alternately
    endpoints = platform.status()["endpoints"]
    assert [httpx.get(f"{url}/api/model/properties").json() for url in endpoints] == [{"multiplier": 10}] * 2

    listed = platform.legion("model", "property", "list", "summation", "-o", "json", token=platform.viewer)
    assert listed.exit_code == 0, listed.output
    assert json.loads(listed.stdout) == [{"name": "multiplier", "value": 10, "modelValue": 1}]
    shown = platform.legion("model", "property", "get", "summation", "multiplier", "-o", "jsonpath={.value}")
    assert shown.stdout == "10\n"
    refused = platform.legion("model", "property", "set", "summation", "multiplier", "2", token=platform.viewer)
    assert refused.exit_code == 6, refused.output
    assert "Error: role(s) viewer may not change ModelDeployment objects" in refused.output
    unknown = platform.legion("model", "property", "set", "summation", "ghost", "1")
    assert unknown.exit_code == 2, unknown.output
    assert "Error: cannot set properties: ghost: not a defined property (defined: multiplier)" in unknown.output

    # Through the gateway, a property write is refused whatever its spelling; reading stays open to the token.
    base = f"{platform.gateway.url}/model/summation"
    for path in ("/api/model/properties", "//api/model/properties/", "/api/model/%70roperties"):
        answer = httpx.put(f"{base}{path}", headers=headers, json={"multiplier": 1}, timeout=30)
        assert answer.status_code == 403, (path, answer.text)
        assert "legion model property set" in answer.json()["error"]
    assert httpx.get(f"{base}/api/model/properties", headers=headers, timeout=30).json() == {"multiplier": 10}
    # A replica takes a change only from the runtime, which holds its token.
    direct = httpx.put(f"{endpoints[0]}/api/model/properties", json={"multiplier": 1}, timeout=30)
    assert direct.status_code == 403, direct.text
    assert results(CALLS) == [30] * CALLS

    victim, survivor = platform.pids()
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: victim not in platform.pids() and platform.ready_with_two(), DEADLINE_S, "a new replica")
    [restarted] = set(platform.pids()) - {survivor}
    assert alive(restarted)
    assert results(CALLS) == [30] * CALLS
    assert [httpx.get(f"{url}/api/model/properties").json() for url in platform.status()["endpoints"]] == [
        {"multiplier": 10}
    ] * 2

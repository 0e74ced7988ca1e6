"""The API with its reconcile loop (in-memory runtime): a deployment becomes Ready and is torn down on delete."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import cli_token, start_api
from tests.support.server import ServerProcess, wait_until


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    server = start_api(tmp_path, "--runtime", "memory")
    try:
        yield server, {"Authorization": f"Bearer {cli_token(tmp_path, 'admin')}"}
    finally:
        server.stop()


def test_deployment_goes_ready_then_away(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, headers = served
    url = f"{server.url}/api/v1/model/deployment"
    created = httpx.post(
        url, headers=headers, json={"id": "census", "spec": {"image": "models/census", "minReplicas": 2}}
    )
    assert created.status_code == 201, created.text

    def status() -> dict[str, object]:
        answer: dict[str, object] = httpx.get(f"{url}/census", headers=headers).json().get("status", {})
        return answer

    wait_until(lambda: status().get("state") == "Ready", 30, "the deployment to be Ready")
    assert status()["availableReplicas"] == 2
    assert httpx.delete(f"{url}/census", headers=headers).status_code == 200
    wait_until(lambda: httpx.get(f"{url}/census", headers=headers).status_code == 404, 30, "the deployment to go")

"""The API with its reconcile loop (in-memory runtime): a deployment becomes Ready and is torn down on delete."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from legion.core.tokens import TokenConfig, TokenIssuer
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


def test_routing_snapshot_long_polls_until_a_route_changes(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, headers = served
    base = f"{server.url}/api/v1"
    for name in ("blue", "green"):
        answer = httpx.post(f"{base}/model/deployment", headers=headers, json={"id": name, "spec": {"image": "m"}})
        assert answer.status_code == 201, answer.text

    def routing(**params: object) -> dict[str, object]:
        answer = httpx.get(f"{base}/routing", headers=headers, params=params, timeout=30)
        assert answer.status_code == 200, answer.text
        body: dict[str, object] = answer.json()
        return body

    def both_ready() -> bool:
        deployments = routing()["deployments"]
        assert isinstance(deployments, list)
        return [(d["id"], d["state"], len(d["endpoints"])) for d in deployments] == [
            ("blue", "Ready", 1), ("green", "Ready", 1)
        ]  # fmt: skip

    wait_until(both_ready, 30, "both deployments in the routing snapshot")
    first = routing()
    assert routing(since=first["etag"], wait=0.2)["etag"] == first["etag"], "nothing changed: same etag"

    route = {"id": "split", "spec": {"urlPrefix": "/split", "modelDeployments": [
        {"mdName": "blue", "weight": 90}, {"mdName": "green", "weight": 10}]}}  # fmt: skip
    # the long-poll is in flight when the route is created; it answers with the change, not after `wait`
    with httpx.Client(timeout=30) as client, concurrent.futures.ThreadPoolExecutor(1) as pool:
        waiting = pool.submit(routing, since=first["etag"], wait=30)
        assert client.post(f"{base}/model/route", headers=headers, json=route).status_code == 201
        changed = waiting.result(timeout=10)
    assert changed["etag"] != first["etag"]
    assert changed["routes"] == [{"id": "split", "urlPrefix": "/split", "mirror": None, "modelDeployments": [
        {"mdName": "blue", "weight": 90}, {"mdName": "green", "weight": 10}]}]  # fmt: skip


def test_routing_needs_a_token_and_demand_needs_a_deployment(served: tuple[ServerProcess, dict[str, str]]) -> None:
    server, headers = served
    assert httpx.get(f"{server.url}/api/v1/routing").status_code == 401
    missing = httpx.post(f"{server.url}/api/v1/routing/demand/nowhere", headers=headers)
    assert missing.status_code == 404, missing.text
    assert "nowhere" in missing.json()["detail"]


def test_only_the_gateway_wakes_a_deployment(served: tuple[ServerProcess, dict[str, str]], tmp_path: Path) -> None:
    """A viewer or a data scientist gets 403 whatever the deployment id (existing or not: no 404 tells them which
    exist); the gateway's role (``viewer`` + ``gateway``, as a gateway signs itself) and admins may."""
    server, headers = served
    created = httpx.post(f"{server.url}/api/v1/model/deployment", headers=headers,
                         json={"id": "cold", "spec": {"image": "m", "minReplicas": 0}})  # fmt: skip
    assert created.status_code == 201, created.text
    for role in ("viewer", "data-scientist"):
        other = {"Authorization": f"Bearer {cli_token(tmp_path, role)}"}
        for deployment in ("cold", "nowhere"):
            answer = httpx.post(f"{server.url}/api/v1/routing/demand/{deployment}", headers=other)
            assert answer.status_code == 403, (role, deployment, answer.text)
    secret = json.loads((tmp_path / "keys.json").read_text())["tokenSecret"]
    issuer = TokenIssuer(TokenConfig(secret=secret))
    gateway, _ = issuer.issue("legion-gateway", "legion-api", 600, roles=["viewer", "gateway"])
    woken = httpx.post(f"{server.url}/api/v1/routing/demand/cold", headers={"Authorization": f"Bearer {gateway}"})
    assert woken.status_code == 202, woken.text


def test_a_route_is_ready_when_its_deployments_are_and_shows_its_edge_url(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEGION_API_GATEWAY_URL", "http://gateway.example:8080/")
    server = start_api(tmp_path, "--runtime", "memory")
    headers = {"Authorization": f"Bearer {cli_token(tmp_path, 'admin')}"}
    base = f"{server.url}/api/v1"
    try:
        assert httpx.post(f"{base}/model/deployment", headers=headers,
                          json={"id": "blue", "spec": {"image": "m"}}).status_code == 201  # fmt: skip
        route = {"id": "split", "spec": {"urlPrefix": "/split", "modelDeployments": [{"mdName": "blue"}]}}
        assert httpx.post(f"{base}/model/route", headers=headers, json=route).status_code == 201

        def status() -> dict[str, object]:
            answer: dict[str, object] = httpx.get(f"{base}/model/route/split", headers=headers).json()["status"]
            return answer

        wait_until(lambda: status().get("state") == "Ready", 30, "the route to be Ready")
        assert status()["edgeUrl"] == "http://gateway.example:8080/split"
        listed = httpx.get(f"{base}/model/route", headers=headers).json()
        assert [r["status"] for r in listed] == [{"state": "Ready", "edgeUrl": "http://gateway.example:8080/split"}]
    finally:
        server.stop()

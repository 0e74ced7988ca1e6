"""The gateway on a real management API: it follows the API's routing long-poll (a change made through the API is
in the gateway within a second), honours revocations made through it, reads the routing with a token it signs
itself from the API's keys file, and, with the local runtime, wakes a ``minReplicas: 0`` deployment on demand."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from legion.core.tokens import TokenConfig, TokenIssuer
from tests.api.conftest import start_api
from tests.gateway.conftest import bearer
from tests.support.server import ServerProcess, wait_until

BODY = {"columns": ["a"], "data": [[5]]}


def admin_token(data_dir: Path) -> str:
    """An admin API token signed with the installation's key (what ``legion api token`` prints, without its
    interpreter start-up)."""
    secret = json.loads((data_dir / "keys.json").read_text())["tokenSecret"]
    signed, _ = TokenIssuer(TokenConfig(secret=secret)).issue("admin", "legion-api", 600, roles=["admin"])
    return signed


def start_gateway(api: ServerProcess, data_dir: Path, *env: tuple[str, str]) -> ServerProcess:
    command = [sys.executable, "-m", "legion", "gateway", "--port", "0", "--api-url", api.url,
               "--keys-file", str(data_dir / "keys.json"), "--log-dir", str(data_dir / "logs"),
               "--log-buffer-dir", str(data_dir / "gateway-buffer")]  # fmt: skip
    # short long-polls: the API holds one until it ends, also while it shuts down
    gateway = ServerProcess(data_dir, command=command, env={"LEGION_GATEWAY_POLL_WAIT_S": "2", **dict(env)})
    gateway.wait_ready(path="/healthcheck")
    return gateway


@pytest.fixture
def api(tmp_path: Path) -> Iterator[tuple[ServerProcess, httpx.Client]]:
    server = start_api(tmp_path, "--runtime", "none")
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=bearer(admin_token(tmp_path))) as client:
            yield server, client
    finally:
        server.stop()


def etag_of(url: str) -> str:
    etag: str = httpx.get(f"{url}/healthcheck").json()["routing"]
    return etag


def test_changes_made_through_the_api_reach_the_gateway_within_a_second(
    api: tuple[ServerProcess, httpx.Client], tmp_path: Path
) -> None:
    server, client = api
    assert (
        client.post("/model/deployment", json={"id": "toy", "spec": {"image": "m", "minReplicas": 0}}).status_code
        == 201
    )
    gateway = start_gateway(server, tmp_path, ("LEGION_GATEWAY_COLD_START_TIMEOUT_S", "0.5"))
    try:
        wait_until(lambda: etag_of(gateway.url) == client.get("/routing").json()["etag"], 10, "the first routing")
        before = etag_of(gateway.url)
        route = {"id": "live", "spec": {"urlPrefix": "/live", "modelDeployments": [{"mdName": "toy"}]}}
        assert client.post("/model/route", json=route).status_code == 201
        changed = time.monotonic()
        wait_until(lambda: etag_of(gateway.url) != before, 1.0, "the route to reach the gateway")
        assert time.monotonic() - changed < 1.0

        issued = client.post("/model/token", json={"models": [{"name": "toy"}]}).json()
        held = httpx.post(f"{gateway.url}/live/api/model/invoke", json=BODY, headers=bearer(issued["token"]))
        assert held.status_code == 503, held.text  # accepted, then waited for a replica no runtime will start
        assert client.delete(f"/model/token/{issued['tokenId']}").status_code == 200
        revoked = time.monotonic()

        def refused() -> bool:
            answer = httpx.post(f"{gateway.url}/live/api/model/invoke", json=BODY, headers=bearer(issued["token"]))
            return answer.status_code == 401

        wait_until(refused, 1.0, "the revocation to reach the gateway")
        assert time.monotonic() - revoked < 1.0
    finally:
        gateway.stop()


@pytest.mark.slow
def test_a_scaled_to_zero_deployment_is_woken_by_a_request_and_answers_it(tmp_path: Path, toy_model: Path) -> None:
    data_dir = tmp_path / "api"
    server = start_api(data_dir, "--runtime", "local")
    gateway = None
    try:
        with httpx.Client(base_url=f"{server.url}/api/v1", headers=bearer(admin_token(data_dir))) as client:
            spec = {"image": str(toy_model), "minReplicas": 0}
            assert client.post("/model/deployment", json={"id": "toy", "spec": spec}).status_code == 201
            gateway = start_gateway(server, data_dir)
            signed = client.post("/model/token", json={"models": [{"name": "toy", "version": "1"}]}).json()["token"]
            answer = httpx.post(f"{gateway.url}/model/toy/api/model/invoke", json=BODY, headers=bearer(signed),
                                timeout=120)  # fmt: skip
            assert answer.status_code == 200, answer.text
            assert answer.json()["prediction"] == [[10]]
            version = httpx.post(f"{gateway.url}/api/model/toy/1/invoke", json={"a": 6}, headers=bearer(signed))
            assert version.status_code == 200, version.text  # the version-addressed path, once the model is known
            # replicas of the local runtime outlive the API by design: delete the deployment before stopping it
            assert client.delete("/model/deployment/toy").status_code == 200
            wait_until(lambda: client.get("/model/deployment/toy").status_code == 404, 60, "the replica to stop")
    finally:
        if gateway is not None:
            gateway.stop()
        server.stop()

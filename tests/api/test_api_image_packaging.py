"""The ``docker-rest`` packaging integration without the container tools: its schema as the census example ships
it, what the API refuses on create (422 naming the field), and what fails before any build (a target Connection
gone or changed after the packaging was created: ``failed`` with a reason naming it). The builds and pushes with
podman and a real registry are in ``tests/images/test_image_packaging.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api, cli_token, start_api
from tests.api.test_api_virtualenv_packaging import example_integration
from tests.support.server import ServerProcess, wait_until

DEADLINE_S = 120.0
REGISTRY = {"id": "registry", "spec": {"type": "docker", "uri": "http://127.0.0.1:5999", "username": "u",
                                       "password": "never-shown-4711"}}  # fmt: skip
BUCKET = {"id": "bucket", "spec": {"type": "s3", "uri": "s3://models"}}


def packaging(ident: str, arguments: dict[str, Any], connection: str = "registry") -> dict[str, Any]:
    targets = [{"name": "docker-push", "connectionName": connection}]
    spec = {"artifactName": "summation-1.0", "integrationName": "docker-rest", "arguments": arguments}
    return {"id": ident, "spec": {**spec, "targets": targets}}


@pytest.fixture(scope="module")
def store(api: Api) -> Api:
    """The API (no runtime) with the docker-rest integration and a docker and an s3 connection."""
    headers = api.headers(api.admin)
    for path, document in (("packaging/integration", example_integration("docker-rest")),
                           ("connection", REGISTRY), ("connection", BUCKET)):  # fmt: skip
        answer = httpx.post(f"{api.url}/api/v1/{path}", headers=headers, json=document)
        assert answer.status_code == 201, answer.text
    return api


def test_docker_rest_ships_its_targets_and_arguments_schema(store: Api) -> None:
    answer = httpx.get(f"{store.url}/api/v1/packaging/integration/docker-rest", headers=store.headers(store.viewer))
    spec = answer.json()["spec"]
    assert spec["entrypoint"] == "legion model image"
    assert spec["schema"]["targets"] == [{"name": "docker-push", "connectionTypes": ["docker"], "required": True}]
    arguments = spec["schema"]["arguments"]
    assert set(arguments["properties"]) == {"imageName", "baseImage"}
    assert arguments["required"] == ["imageName"] and arguments["additionalProperties"] is False


@pytest.mark.parametrize(
    ("document", "field", "said"),
    [
        (packaging("p1", {"imageName": "legion/{model}:{version}"}), "spec.arguments.imageName", "does not match"),
        (packaging("p2", {"imageName": "Legion/{name}"}), "spec.arguments.imageName", "does not match"),
        (packaging("p3", {"imageName": "legion/{name}", "tag": "x"}), "spec.arguments.tag", "takes no argument"),
        (packaging("p4", {}), "spec.arguments.imageName", "required"),
        (packaging("p5", {"imageName": "a/{name}"}, "nowhere"), "spec.targets.0.connectionName", "no Connection"),
        (packaging("p6", {"imageName": "a/{name}"}, "bucket"), "spec.targets.0.connectionName", "of type s3"),
        ({"id": "p7", "spec": {**packaging("p7", {"imageName": "a"})["spec"], "targets": []}}, "spec.targets",
         "'docker-push' is required"),
    ],
)  # fmt: skip
def test_a_bad_packaging_is_refused_naming_the_field(
    store: Api, document: dict[str, Any], field: str, said: str
) -> None:
    answer = httpx.post(f"{store.url}/api/v1/model/packaging", headers=store.headers(store.admin), json=document)
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert field in answer.text and said in answer.text
    assert "never-shown-4711" not in answer.text


@dataclass(frozen=True)
class LocalApi:
    server: ServerProcess
    data_dir: Path
    headers: dict[str, str]

    def post(self, path: str, document: dict[str, Any]) -> None:
        answer = httpx.post(f"{self.server.url}/api/v1/{path}", headers=self.headers, json=document)
        assert answer.status_code == 201, answer.text

    def ended(self, ident: str, deadline_s: float = DEADLINE_S) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def done() -> bool:
            url = f"{self.server.url}/api/v1/model/packaging/{ident}"
            found.update(httpx.get(url, headers=self.headers).json()["status"])
            return found.get("state") in {"succeeded", "failed"}

        wait_until(done, deadline_s, f"packaging {ident} to end", interval_s=0.1)
        return found


@pytest.fixture(scope="module")
def local_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalApi]:
    """An API with the local runtime and the docker-rest integration."""
    data_dir = tmp_path_factory.mktemp("image-api")
    server = start_api(data_dir, "--runtime", "local")
    api = LocalApi(server, data_dir, {"Authorization": f"Bearer {cli_token(data_dir, 'admin')}"})
    try:
        api.post("packaging/integration", example_integration("docker-rest"))
        yield api
    finally:
        server.stop()
    assert "never-shown-4711" not in server.stderr  # the API's own log


def test_a_target_connection_changed_after_create_fails_the_packaging_naming_it(
    local_api: LocalApi, summation_model_dir: Path
) -> None:
    local_api.post("connection", {**REGISTRY, "id": "changing"})
    document = packaging("changing", {"imageName": "legion/{name}:{version}"}, "changing")
    document["spec"]["artifactName"] = "summation-later"  # not there yet: the packaging waits for it
    local_api.post("model/packaging", document)
    with httpx.Client(base_url=local_api.server.url, headers=local_api.headers) as client:
        refused = client.delete("/api/v1/connection/changing")  # a named connection cannot go missing
        assert refused.status_code == 409, refused.text
        changed = client.put("/api/v1/connection/changing", json={**BUCKET, "id": "changing"})
        assert changed.status_code == 200, changed.text
    shutil.copytree(summation_model_dir, local_api.data_dir / "models" / "summation-later")
    status = local_api.ended("changing")
    assert status["state"] == "failed", status
    assert "Connection 'changing' is of type s3, not docker" in status["reason"]
    assert "never-shown-4711" not in str(status)

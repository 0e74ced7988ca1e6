"""The ``docker-rest`` packaging for real: a ModelPackaging on an API with the local runtime builds the summation
model's image with podman (in the session's private storage) and pushes it to Debian's registry on loopback with
the ``docker`` Connection's credentials; ``results`` name it by digest, the registry holds it with Legion's labels,
and the password shows in no status, reason or log. Refused credentials fail the packaging naming the registry.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from legion.images import ContainerTools, ImageSettings
from tests.api.conftest import cli_token, start_api
from tests.api.test_api_image_packaging import LocalApi
from tests.api.test_api_virtualenv_packaging import example_integration
from tests.support.containers import Registry, requires_podman

pytestmark = requires_podman
BUILD_DEADLINE_S = 1500.0  # the session's first build may make the Debian base and the venv layer cold
WRONG = "not-the-password-0815"


@pytest.fixture(scope="module")
def platform(
    image_settings: ImageSettings,
    registry: Registry,
    summation_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[LocalApi]:
    """An API with the local runtime building in the session's container storage, the summation model as an
    artifact, and the docker-rest integration as the census example ships it."""
    data_dir = tmp_path_factory.mktemp("image-packaging-api")
    assert image_settings.storage_dir is not None
    env = {"LEGION_IMAGES_STORAGE_DIR": str(image_settings.storage_dir),
           "LEGION_IMAGES_CACHE_DIR": str(image_settings.cache_dir)}  # fmt: skip
    server = start_api(data_dir, "--runtime", "local", env=env)
    api = LocalApi(server, data_dir, {"Authorization": f"Bearer {cli_token(data_dir, 'admin')}"})
    try:
        shutil.copytree(summation_model_dir, data_dir / "models" / "summation-1.0")
        api.post("packaging/integration", example_integration("docker-rest"))
        yield api
    finally:
        server.stop()
    for secret in (registry.password, WRONG):
        assert secret not in server.stderr  # the API's own log


def package(api: LocalApi, ident: str, connection: dict[str, object]) -> dict[str, Any]:
    api.post("connection", {"id": ident, "spec": connection})
    targets = [{"name": "docker-push", "connectionName": ident}]
    spec = {"artifactName": "summation-1.0", "integrationName": "docker-rest", "targets": targets,
            "arguments": {"imageName": "legion/{name}:{version}"}}  # fmt: skip
    api.post("model/packaging", {"id": ident, "spec": spec})
    return api.ended(ident, BUILD_DEADLINE_S)


def test_docker_rest_pushes_the_models_image_with_the_connections_credentials_and_names_its_digest(
    platform: LocalApi, registry: Registry, tools: ContainerTools
) -> None:
    connection = {"type": "docker", "uri": f"http://{registry.address}", "username": registry.username,
                  "password": registry.password}  # fmt: skip
    status = package(platform, "pushed", connection)
    assert status["state"] == "succeeded", status
    results = {r["name"]: r["value"] for r in status["results"]}
    repository = f"{registry.address}/legion/summation"
    assert results["tag"] == f"{repository}:1.0"
    assert results["image"].startswith(f"{repository}@sha256:")

    shown = tools.skopeo("inspect", "--tls-verify=false", "--creds", f"{registry.username}:{registry.password}",
                         f"docker://{repository}:1.0", secrets=[registry.password]).stdout  # fmt: skip
    inspected = json.loads(shown)
    assert results["image"] == f"{repository}@{inspected['Digest']}"
    assert inspected["Labels"]["legion.model.name"] == "summation"
    assert inspected["Labels"]["legion.model.version"] == "1.0"

    url, headers = platform.server.url, platform.headers
    answers = [httpx.get(f"{url}/api/v1/model/packaging/pushed", headers=headers),
               httpx.get(f"{url}/api/v1/model/packaging/pushed/log", headers=headers),
               httpx.get(f"{url}/api/v1/connection/pushed", headers=headers)]  # fmt: skip
    assert all(registry.password not in answer.text for answer in answers)
    assert answers[1].status_code == 404 and "built by the API itself, not run as a job" in answers[1].text


def test_credentials_the_registry_refuses_fail_the_packaging_naming_the_registry(
    platform: LocalApi, registry: Registry
) -> None:
    connection = {"type": "docker", "uri": f"http://{registry.address}", "username": registry.username,
                  "password": WRONG}  # fmt: skip
    status = package(platform, "refused", connection)
    assert status["state"] == "failed", status
    reason = str(status["reason"])
    assert f"the registry {registry.address} refused the credentials of connection 'refused'" in reason
    assert WRONG not in str(status) and registry.password not in str(status)

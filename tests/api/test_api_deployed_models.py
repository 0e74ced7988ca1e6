"""A model deployed from a path is registered, with where it is deployed; the same build deployed again is not
registered twice; another build under a registered name and version fails its deployment and leaves the registry
as it was; ``/api/v1/model/deployment/{id}/model`` describes the model a deployment serves.

A real ``legion api`` (in-memory runtime, so the reconcile loop runs without model processes) on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from legion.model import ModelBuilder
from legion.model.package import build_package
from tests.api.conftest import Api, cli_token, start_api
from tests.support.server import wait_until


@dataclass(frozen=True)
class Served:
    url: str
    headers: dict[str, str]

    def deploy(self, ident: str, image: str | Path) -> None:
        answer = httpx.post(
            f"{self.url}/api/v1/model/deployment",
            headers=self.headers,
            json={"id": ident, "spec": {"image": str(image)}},
        )
        assert answer.status_code == 201, answer.text

    def status(self, ident: str) -> dict[str, Any]:
        answer = httpx.get(f"{self.url}/api/v1/model/deployment/{ident}", headers=self.headers)
        assert answer.status_code == 200, answer.text
        status: dict[str, Any] = answer.json().get("status", {})
        return status

    def settled(self, ident: str, state: str) -> dict[str, Any]:
        wait_until(lambda: self.status(ident).get("state") == state, 60, f"deployment {ident} to be {state}")
        return self.status(ident)

    def models(self, name: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/api/v1/model", headers=self.headers, params={"name": name})
        assert answer.status_code == 200, answer.text
        found: list[dict[str, Any]] = answer.json()
        return found

    def served_model(self, ident: str) -> httpx.Response:
        return httpx.get(f"{self.url}/api/v1/model/deployment/{ident}/model", headers=self.headers)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("legion-deployed")
    server = start_api(data_dir, "--runtime", "memory")
    try:
        yield Served(server.url, {"Authorization": f"Bearer {cli_token(data_dir, 'admin')}"})
    finally:
        server.stop()


def save_model(path: Path, name: str, version: str, column: str = "a") -> Path:
    builder = ModelBuilder(name, version)
    builder.export_df(lambda df: df[df.columns[0]] * 2, pd.DataFrame({column: [1, 2]}))
    builder.send_metric("accuracy", 0.75)
    builder.define_property("threshold", 0.5)
    return builder.save(path)


def test_a_model_deployed_from_a_path_is_registered_with_its_deployments(served: Served, tmp_path: Path) -> None:
    model = save_model(tmp_path / "model", "doubler", "1")
    served.deploy("doubler", model)
    status = served.settled("doubler", "Ready")
    assert (status["modelName"], status["modelVersion"]) == ("doubler", "1")

    [entry] = served.models("doubler")
    assert (entry["version"], entry["source"], entry["artifactUri"]) == ("1", "deployment/doubler", str(model))
    assert entry["deployments"] == ["doubler"]
    assert entry["manifest"]["endpoints"]["default"]["columns"] == [{"name": "a", "type": "int64", "nullable": False}]
    assert entry["metrics"] == {"accuracy": 0.75}

    # the same build, packaged and deployed elsewhere: one registry entry, with both deployments
    package = tmp_path / "package"
    build_package(model, package)
    served.deploy("doubler-packaged", package)
    served.settled("doubler-packaged", "Ready")
    [entry] = served.models("doubler")
    assert entry["deployments"] == ["doubler", "doubler-packaged"]
    assert entry["artifactUri"] == str(model)


def test_another_build_under_a_registered_version_fails_its_deployment(served: Served, tmp_path: Path) -> None:
    first = save_model(tmp_path / "first", "tripler", "2")
    served.deploy("tripler", first)
    served.settled("tripler", "Ready")
    [before] = served.models("tripler")

    other = save_model(tmp_path / "other", "tripler", "2", column="b")
    served.deploy("tripler-other", other)
    status = served.settled("tripler-other", "Failed")
    assert "another build of tripler:2 is registered (source deployment/tripler" in status["reason"]
    assert "save this model under another version" in status["reason"]
    assert "modelName" not in status
    assert served.models("tripler") == [before]  # not overwritten, and the failed deployment is not listed
    assert served.served_model("tripler-other").json()["registered"] is False

    # once the first build is undeployed and its entry removed, the other deployment recovers by itself (its spec
    # never changed)
    deployment = f"{served.url}/api/v1/model/deployment/tripler"
    assert httpx.delete(deployment, headers=served.headers).status_code == 200
    wait_until(lambda: httpx.get(deployment, headers=served.headers).status_code == 404, 60, "tripler to go")
    removed = httpx.delete(f"{served.url}/api/v1/model/tripler/2", headers=served.headers)
    assert removed.status_code == 200, removed.text
    served.settled("tripler-other", "Ready")
    [after] = served.models("tripler")
    assert (after["artifactUri"], after["source"]) == (str(other), "deployment/tripler-other")


def test_the_model_a_deployment_serves_is_described(served: Served, tmp_path: Path) -> None:
    model = save_model(tmp_path / "model", "halver", "1.0")
    served.deploy("halver", model)
    served.settled("halver", "Ready")
    answer = served.served_model("halver")
    assert answer.status_code == 200, answer.text
    described = answer.json()
    assert described["registered"] is True
    assert (described["name"], described["version"], described["deployments"]) == ("halver", "1.0", ["halver"])
    manifest = described["manifest"]
    assert manifest["endpoints"]["default"]["columns"] == [{"name": "a", "type": "int64", "nullable": False}]
    assert manifest["properties"] == {"threshold": 0.5}
    assert manifest["requirements"]["pandas"] == pd.__version__
    assert manifest["provenance"]["createdAt"]


@pytest.mark.parametrize(
    ("ident", "image", "detail"),
    [
        ("nowhere", None, "ModelDeployment 'nowhere' not found"),
        ("oci-image", "registry.example:5000/census:1.0", "its image 'registry.example:5000/census:1.0' is not a"),
    ],
)
def test_no_known_model_is_a_404_naming_the_deployment(
    served: Served, ident: str, image: str | None, detail: str
) -> None:
    if image is not None:
        served.deploy(ident, image)
    answer = served.served_model(ident)
    assert answer.status_code == 404, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert detail in answer.json()["detail"]


def test_without_a_reconcile_loop_the_model_comes_from_the_deployments_files(api: Api, tmp_path: Path) -> None:
    model = save_model(tmp_path / "model", "unreconciled", "7")
    created = httpx.post(
        f"{api.url}/api/v1/model/deployment",
        headers=api.headers(api.scientist),
        json={"id": "unreconciled", "spec": {"image": str(model)}},
    )
    assert created.status_code == 201, created.text
    answer = httpx.get(f"{api.url}/api/v1/model/deployment/unreconciled/model", headers=api.headers(api.viewer))
    assert answer.status_code == 200, answer.text
    described = answer.json()
    assert (described["registered"], described["name"], described["version"]) == (False, "unreconciled", "7")
    assert described["deployments"] == ["unreconciled"]
    assert described["manifest"]["endpoints"]["default"]["columns"][0]["name"] == "a"

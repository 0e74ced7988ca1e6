"""A ``local`` packaging with ``envManager: virtualenv``: the package runs in the model's own virtualenv, and so do
the replicas of a deployment of it. A real API with the local runtime (sandboxed jobs and replicas), the pinned
model of ``tests.support.pinned`` trained by a ModelTraining, its virtualenv reused from the session's cache.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.api.conftest import Api, create, local_api
from tests.conftest import BuiltVirtualenv
from tests.support.pinned import PINNED_SIX, REQUEST, write_training
from tests.support.server import ServerProcess, wait_until

ROOT = Path(__file__).resolve().parents[2]
DEADLINE_S = 300.0


def example_integration(ident: str = "local") -> dict[str, Any]:
    """A PackagingIntegration of the census example (``local``, ``docker-rest``), with its schema."""
    documents = yaml.safe_load_all((ROOT / "examples/census_income/legion.yaml").read_text())
    [integration] = [d for d in documents if d["kind"] == "PackagingIntegration" and d["id"] == ident]
    return {"id": integration["id"], "spec": integration["spec"]}


@pytest.fixture(scope="module")
def platform(
    pinned_six_virtualenv: BuiltVirtualenv, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("venv-api")
    env = {"LEGION_ENVS_CACHE_DIR": str(pinned_six_virtualenv.cache_dir)}
    with local_api(data_dir, env=env) as running:
        yield running


def status_when(
    platform: tuple[ServerProcess, dict[str, str]], path: str, ident: str, states: set[str]
) -> dict[str, Any]:
    server, headers = platform
    found: dict[str, Any] = {}

    def reached() -> bool:
        found.update(httpx.get(f"{server.url}/api/v1/{path}/{ident}", headers=headers).json().get("status", {}))
        return found.get("state") in states

    wait_until(reached, DEADLINE_S, f"{path} {ident} to reach {states}", interval_s=0.2)
    return found


@pytest.mark.slow
@pytest.mark.timeout(900)  # the session's first use of the virtualenv makes it (see pinned_six_virtualenv)
def test_a_virtualenv_packaging_is_deployed_in_the_models_virtualenv(
    platform: tuple[ServerProcess, dict[str, str]],
    pinned_six_virtualenv: BuiltVirtualenv,
    tmp_path: Path,
) -> None:
    cache = pinned_six_virtualenv.cache_dir
    [environment] = [p for p in cache.iterdir() if p.is_dir()]
    environments_before = sorted(p.name for p in cache.iterdir())
    create(platform, "toolchain/integration", {"id": "python", "spec": {"entrypoint": "python"}})
    create(platform, "packaging/integration", example_integration())
    code = write_training(tmp_path / "code")
    create(platform, "model/training", {"id": "six", "spec": {
        "model": {"name": "six-version", "version": "1"}, "toolchain": "python", "localPath": str(code),
        "entrypoint": "train.py", "args": ["--output", "{output}"]}})  # fmt: skip
    trained = status_when(platform, "model/training", "six", {"succeeded", "failed"})
    assert trained["state"] == "succeeded", trained

    packaging = {"artifactName": "six-version-1", "integrationName": "local", "arguments": {"envManager": "virtualenv"}}
    create(platform, "model/packaging", {"id": "six-pack", "spec": packaging})
    packed = status_when(platform, "model/packaging", "six-pack", {"succeeded", "failed"})
    assert packed["state"] == "succeeded", packed
    package = Path(packed["results"][0]["value"])
    recorded = yaml.safe_load((package / "legion.package.yaml").read_text())["environment"]
    assert recorded == {"manager": "virtualenv", "key": environment.name, "python": str(environment / "bin/python")}
    assert sorted(p.name for p in cache.iterdir()) == environments_before  # the same needs: the same virtualenv

    create(platform, "model/deployment", {"id": "six", "spec": {"image": "packages/six-pack", "minReplicas": 1}})
    deployed = status_when(platform, "model/deployment", "six", {"Ready", "Failed"})
    assert deployed["state"] == "Ready", deployed
    [endpoint] = deployed["endpoints"]
    answer = httpx.post(f"{endpoint}/api/model/invoke", json=REQUEST, timeout=30)
    assert answer.json() == {"prediction": [[PINNED_SIX]], "columns": ["six"]}


def test_an_env_manager_the_integration_does_not_offer_is_refused_naming_the_argument(api: Api) -> None:
    headers = api.headers(api.admin)
    answer = httpx.post(f"{api.url}/api/v1/packaging/integration", headers=headers, json=example_integration())
    assert answer.status_code == 201, answer.text
    spec = {"artifactName": "six-version-1", "integrationName": "local", "arguments": {"envManager": "conda"}}
    answer = httpx.post(f"{api.url}/api/v1/model/packaging", headers=headers, json={"id": "p", "spec": spec})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert "spec.arguments.envManager" in answer.text and "'local', 'virtualenv'" in answer.text

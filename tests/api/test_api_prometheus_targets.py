"""``/api/v1/prometheus/targets`` (Prometheus ``http_sd``) on a real API with the local runtime.

The targets follow deployments: a replica is listed once it is ready, and every listed address really serves
Prometheus metrics at the listed path; a deleted deployment's replicas leave the list. The API lists itself at the
address the caller used. Reads need a token like every other read.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from prometheus_client.parser import text_string_to_metric_families

from legion.api.prometheus_routes import model_groups
from legion.api.storage import StoredResource
from legion.model import ModelBuilder
from tests.api.conftest import cli_token, start_api
from tests.support.server import ServerProcess, wait_until

DEADLINE_S = 90.0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str], str]]:
    data_dir = tmp_path_factory.mktemp("prometheus-sd-api")
    server = start_api(data_dir, "--runtime", "local", "--stop-replicas-on-exit")
    try:
        yield server, {"Authorization": f"Bearer {cli_token(data_dir, 'admin')}"}, cli_token(data_dir, "viewer")
    finally:
        server.stop()


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    builder = ModelBuilder("doubler", "3")
    builder.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    return builder.save(tmp_path_factory.mktemp("doubler") / "model")


def targets(server: ServerProcess, token: str, component: str | None = None) -> list[dict[str, Any]]:
    params = {"component": component} if component else {}
    answer = httpx.get(
        f"{server.url}/api/v1/prometheus/targets", params=params, headers={"Authorization": f"Bearer {token}"}
    )
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"] == "application/json"  # Prometheus refuses any other type
    groups: list[dict[str, Any]] = answer.json()
    return groups


def metric_names(group: dict[str, Any], token: str | None = None) -> set[str]:
    """Scrape the target as Prometheus would: scheme, address and path from the group."""
    labels = group["labels"]
    (address,) = group["targets"]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    answer = httpx.get(f"{labels['__scheme__']}://{address}{labels['__metrics_path__']}", headers=headers)
    assert answer.status_code == 200, answer.text
    return {family.name for family in text_string_to_metric_families(answer.text)}


def test_reads_need_a_token_and_a_known_component(served: tuple[ServerProcess, dict[str, str], str]) -> None:
    server, _, viewer = served
    url = f"{server.url}/api/v1/prometheus/targets"
    assert httpx.get(url).status_code == 401
    assert httpx.get(url, headers={"Authorization": "Bearer not-a-token"}).status_code == 401
    bad = httpx.get(url, params={"component": "gateway"}, headers={"Authorization": f"Bearer {viewer}"})
    assert bad.status_code == 422
    assert bad.headers["content-type"] == "application/problem+json"
    assert bad.json()["errors"] == {"query.component": "Input should be 'api' or 'model'"}


def test_the_api_lists_itself_where_the_caller_reached_it(served: tuple[ServerProcess, dict[str, str], str]) -> None:
    server, _, viewer = served
    (api,) = targets(server, viewer, "api")
    assert api["targets"] == [server.url.removeprefix("http://")]
    assert api["labels"] == {"__scheme__": "http", "__metrics_path__": "/metrics", "component": "api"}
    assert "legion_api_requests" in metric_names(api, viewer)  # the advertised address and path really answer


def test_replica_targets_follow_a_deployment(served: tuple[ServerProcess, dict[str, str], str], model: Path) -> None:
    server, admin, viewer = served
    url = f"{server.url}/api/v1/model/deployment"
    created = httpx.post(url, headers=admin, json={"id": "twice", "spec": {"image": str(model), "minReplicas": 2}})
    assert created.status_code == 201, created.text

    wait_until(lambda: len(targets(server, viewer, "model")) == 2, DEADLINE_S, "two replica targets", interval_s=0.2)
    replicas = targets(server, viewer, "model")
    endpoints = httpx.get(f"{url}/twice", headers=admin).json()["status"]["endpoints"]
    assert sorted(t for group in replicas for t in group["targets"]) == sorted(
        e.removeprefix("http://") for e in endpoints
    )
    for group in replicas:
        assert group["labels"] == {
            "__scheme__": "http", "__metrics_path__": "/metrics",
            "component": "model", "deployment": "twice", "model": "doubler", "version": "3",
        }  # fmt: skip
        assert "legion_model_requests" in metric_names(group)  # open: no token is sent to a model's process
    everything = targets(server, viewer)
    assert sorted(g["labels"]["component"] for g in everything) == ["api", "model", "model"]
    assert [g["labels"]["component"] for g in targets(server, viewer, "api")] == ["api"]

    assert httpx.delete(f"{url}/twice", headers=admin).status_code == 200
    wait_until(lambda: not targets(server, viewer, "model"), DEADLINE_S, "the replica targets to go", interval_s=0.2)
    assert [g["labels"]["component"] for g in targets(server, viewer)] == ["api"]


def stored(ident: str, status: dict[str, Any], *, deleting: bool = False) -> StoredResource:
    now = datetime.now(UTC)
    return StoredResource("ModelDeployment", ident, {"image": "m"}, status, {}, now, now, 1, 1, deleting)


def test_only_scrapeable_replicas_of_live_deployments_are_listed() -> None:
    groups = model_groups([
        stored("memory", {"endpoints": ["memory://memory/0"], "modelName": "m", "modelVersion": "1"}),
        stored("going", {"endpoints": ["http://127.0.0.1:1"], "modelName": "m"}, deleting=True),
        stored("starting", {}),
        stored("proxied", {"endpoints": ["https://models.example:8443/replica-0/"]}),
    ])  # fmt: skip
    assert groups == [
        {
            "targets": ["models.example:8443"],
            "labels": {"__scheme__": "https", "__metrics_path__": "/replica-0/metrics",
                       "component": "model", "deployment": "proxied"},
        }
    ]  # fmt: skip

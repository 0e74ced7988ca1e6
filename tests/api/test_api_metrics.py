"""The management API's ``/metrics`` on a real API (in-memory runtime), read with Prometheus' own text parser.

Requests are counted by route template (never the raw path), method and code, and timed; reconcile steps by kind
and outcome; the queue, the objects by kind and state, and each deployment's replicas are read at scrape time.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import cli_token, start_api
from tests.support.server import ServerProcess, wait_until

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str], str]]:
    data_dir = tmp_path_factory.mktemp("metrics-api")
    server = start_api(data_dir, "--runtime", "memory")
    try:
        admin = {"Authorization": f"Bearer {cli_token(data_dir, 'admin')}"}
        yield server, admin, cli_token(data_dir, "viewer")
    finally:
        server.stop()


def scrape(server: ServerProcess, token: str) -> Samples:
    answer = httpx.get(f"{server.url}/metrics", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    assert answer.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(answer.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_requests_are_counted_by_route_template_method_and_code(
    served: tuple[ServerProcess, dict[str, str], str],
) -> None:
    server, admin, viewer = served
    url = f"{server.url}/api/v1/model/deployment"
    assert httpx.post(url, headers=admin, json={"id": "counted", "spec": {"image": "m"}}).status_code == 201
    for _ in range(3):
        assert httpx.get(f"{url}/counted", headers=admin).status_code == 200
    assert httpx.get(f"{url}/no-such-deployment", headers=admin).status_code == 404
    assert httpx.get(f"{server.url}/no/such/path/42").status_code == 404
    assert httpx.get(url).status_code == 401

    samples = scrape(server, viewer)
    template = "/api/v1/model/deployment/{resource_id}"
    assert value(samples, "legion_api_requests_total", route=template, method="GET", code="200") == 3
    assert value(samples, "legion_api_requests_total", route=template, method="GET", code="404") == 1
    assert value(samples, "legion_api_requests_total", route="/api/v1/model/deployment", method="POST", code="201") == 1
    assert value(samples, "legion_api_requests_total", route="/api/v1/model/deployment", method="GET", code="401") == 1
    assert value(samples, "legion_api_requests_total", route="<unmatched>", method="GET", code="404") == 1
    assert value(samples, "legion_api_request_duration_seconds_count", route=template, method="GET") == 4
    routes = {dict(labels)["route"] for name, labels in samples if name == "legion_api_requests_total"}
    assert not any("counted" in r or "42" in r for r in routes), routes  # ids never become label values


def test_reconcile_steps_queue_objects_and_replicas_are_measured(
    served: tuple[ServerProcess, dict[str, str], str],
) -> None:
    server, admin, viewer = served
    url = f"{server.url}/api/v1/model/deployment"
    spec = {"id": "measured", "spec": {"image": "m", "minReplicas": 2}}
    assert httpx.post(url, headers=admin, json=spec).status_code == 201
    wait_until(
        lambda: httpx.get(f"{url}/measured", headers=admin).json()["status"].get("state") == "Ready",
        30, "the deployment to be Ready",
    )  # fmt: skip

    samples = scrape(server, viewer)
    steps = sum(
        v for (name, labels), v in samples.items()
        if name == "legion_api_reconcile_duration_seconds_count" and dict(labels)["kind"] == "ModelDeployment"
    )  # fmt: skip
    assert steps >= 1
    outcomes = {dict(labels)["outcome"] for name, labels in samples if name.startswith("legion_api_reconcile_dur")}
    assert outcomes <= {"settled", "retry", "failed", "done", "gone", "error"}
    assert value(samples, "legion_api_objects", kind="ModelDeployment", state="Ready") >= 1
    assert value(samples, "legion_api_deployment_replicas_desired", deployment="measured") == 2
    assert value(samples, "legion_api_deployment_replicas_available", deployment="measured") == 2
    assert value(samples, "legion_api_reconcile_scheduled") >= 1  # every live deployment is scheduled
    assert ("legion_api_reconcile_queue_depth", frozenset()) in samples


def test_metrics_need_a_token_like_every_other_read(served: tuple[ServerProcess, dict[str, str], str]) -> None:
    server, _, _ = served
    answer = httpx.get(f"{server.url}/metrics")
    assert answer.status_code == 401
    assert answer.headers["content-type"] == "application/problem+json"


def test_dev_mode_serves_metrics_without_a_token(tmp_path: Path) -> None:
    server = start_api(tmp_path, "--runtime", "none", "--dev")
    try:
        answer = httpx.get(f"{server.url}/metrics")
        assert answer.status_code == 200
        assert "legion_api_requests_total" in answer.text
        assert "legion_api_reconcile_queue_depth" in answer.text  # declared even without a loop: dashboards stay valid
    finally:
        server.stop()

"""Routing through a running ``legion gateway`` (a process, routing from a file): paths, headers, request ids,
metrics, access log lines, and a routing change under load that takes effect within a second and drops nothing."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import (
    GatewayProcess,
    bearer,
    deployment,
    gateway_process,
    route,
    snapshot,
    token,
    write_routing,
)
from tests.gateway.load import Answer, hammer
from tests.support.server import ServerProcess


@pytest.fixture
def signed() -> str:
    """A token for the stand-in replicas ``a``, ``b`` and ``c``, made when the test runs."""
    return token(("a", "1"), ("b", "1"), ("c", "1"))


@pytest.fixture(scope="module")
def routing_file(tmp_path_factory: pytest.TempPathFactory, replicas: dict[str, ServerProcess]) -> Path:
    path = tmp_path_factory.mktemp("routing") / "routing.json"
    write_routing(path, snapshot(
        [deployment(n, [replicas[n].url]) for n in ("a", "b", "c")],
        [route("ab", "/ab", {"a": 100}), route("deep", "/ab/deep", {"b": 100})],
    ))  # fmt: skip
    return path


@pytest.fixture(scope="module")
def gateway(routing_file: Path) -> Iterator[GatewayProcess]:
    with gateway_process(routing_file) as server:
        yield server


def test_each_kind_of_path_reaches_its_deployment_with_the_path_it_expects(
    gateway: GatewayProcess, signed: str
) -> None:
    cases = {
        "/model/a/api/model/invoke?x=1": ("a", "/api/model/invoke", "x=1"),
        "/model/b/v2/models/b/infer": ("b", "/v2/models/b/infer", ""),
        "/api/model/c/1/invoke/proba": ("c", "/api/model/c/1/invoke/proba", ""),
        "/ab/invocations?fmt=csv": ("a", "/invocations", "fmt=csv"),
        "/ab/deep/invocations": ("b", "/invocations", ""),
    }
    with httpx.Client(base_url=gateway.url, headers=bearer(signed)) as client:
        for path, (name, sent, query) in cases.items():
            answer = client.post(path, content=b'{"x": 1}', headers={"Content-Type": "application/json"})
            assert answer.status_code == 200, (path, answer.text)
            seen = answer.json()
            assert (seen["name"], seen["path"], seen["query"], seen["body"]) == (name, sent, query, '{"x": 1}')
            assert seen["headers"]["content-type"] == "application/json"
            assert "authorization" not in seen["headers"], "the token stays at the gateway"
            assert seen["headers"]["x-forwarded-for"] == "127.0.0.1"


PROPERTY_WRITES = [
    ("PUT", "/model/a/api/model/properties"),
    ("POST", "/model/a/api/model/properties"),
    ("PATCH", "/model/a/api/model/properties?multiplier=1"),
    ("DELETE", "/model/a/api/model/properties"),
    ("PUT", "/model/a//api/model/properties/"),
    ("PUT", "/model/a/api/model/%70roperties"),
    ("PUT", "/model/a/api%2Fmodel%2Fproperties"),
    ("PUT", "/model/a/api/model/%2570roperties"),
    ("PUT", "/model/a/api/model/x/../properties"),
    ("PUT", "/model/a/./api/model/./properties"),
    ("PUT", "/model/a/API/Model/Properties"),
    ("PUT", "/model/a/api\\model\\properties"),
    ("PUT", "/ab/api/model/properties"),
]


@pytest.mark.parametrize(("method", "path"), PROPERTY_WRITES)
def test_a_property_write_is_refused_whatever_its_spelling(
    gateway: GatewayProcess, signed: str, method: str, path: str
) -> None:
    """Properties belong to the deployment and are set through the management API: with a valid model token, no
    write reaches a replica (the stand-in would answer 200 to anything)."""
    with httpx.Client(base_url=gateway.url, headers=bearer(signed)) as client:
        request = client.build_request(method, path, json={"multiplier": 1}, extensions={"target": path.encode()})
        answer = client.send(request)
    assert answer.status_code == 403, answer.text
    assert "legion model property set" in answer.json()["error"]


def test_properties_may_still_be_read_through_the_gateway(gateway: GatewayProcess, signed: str) -> None:
    answer = httpx.get(f"{gateway.url}/model/a/api/model/properties", headers=bearer(signed))
    assert answer.status_code == 200, answer.text
    assert (answer.json()["name"], answer.json()["path"]) == ("a", "/api/model/properties")


def test_unknown_paths_and_deployments_are_json_404s(gateway: GatewayProcess, signed: str) -> None:
    with httpx.Client(base_url=gateway.url, headers=bearer(signed)) as client:
        for path in ["/nothing/here", "/model/zzz/api/model/invoke", "/api/model/zzz/1/invoke"]:
            answer = client.post(path, json={})
            assert answer.status_code in (404, 401), path  # a version the token does not name is a 401 first
            assert "error" in answer.json()
        assert client.post("/model/zzz/api/model/invoke", json={}).status_code == 404


def test_request_ids_are_taken_sent_upstream_and_echoed(gateway: GatewayProcess, signed: str) -> None:
    with httpx.Client(base_url=gateway.url, headers=bearer(signed)) as client:
        for header in ("Request-ID", "X-Request-ID"):
            answer = client.get("/model/a/api/model/info", headers={header: "my-id-42"})
            assert answer.headers["request-id"] == "my-id-42"
            assert answer.json()["headers"]["request-id"] == "my-id-42"
        generated = client.get("/model/a/api/model/info")
        rid = generated.headers["request-id"]
        assert len(rid) == 32 and generated.json()["headers"]["request-id"] == rid
        refused = client.get("/model/a/api/model/info", headers={"Authorization": "Bearer nope", "Request-ID": "r-401"})
        assert refused.status_code == 401 and refused.headers["request-id"] == "r-401"


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_count_by_route_deployment_and_status_and_split_upstream_time(
    gateway: GatewayProcess, signed: str
) -> None:
    with httpx.Client(base_url=gateway.url, headers=bearer(signed)) as client:
        before = _samples(client.get("/metrics").text)
        for _ in range(3):
            assert client.get("/ab/deep/x").status_code == 200
        assert client.get("/ab/deep/x", headers={"Authorization": "Bearer nope"}).status_code == 401
        after = _samples(client.get("/metrics").text)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("legion_gateway_requests_total", route="deep", deployment="b", code="200") == 3
    assert delta("legion_gateway_requests_total", route="deep", deployment="", code="401") == 1
    assert delta("legion_gateway_upstream_duration_seconds_count", route="deep", deployment="b") == 3
    assert delta("legion_gateway_overhead_duration_seconds_count", route="deep", deployment="b") == 3
    assert delta("legion_gateway_request_duration_seconds_count", route="deep", deployment="b") == 3
    total = delta("legion_gateway_request_duration_seconds_sum", route="deep", deployment="b")
    upstream = delta("legion_gateway_upstream_duration_seconds_sum", route="deep", deployment="b")
    overhead = delta("legion_gateway_overhead_duration_seconds_sum", route="deep", deployment="b")
    assert 0 < upstream < total and overhead == pytest.approx(total - upstream, abs=1e-6)


def test_one_access_log_line_per_request_without_token_or_query(gateway: GatewayProcess, signed: str) -> None:
    with httpx.Client(base_url=gateway.url) as client:
        client.get("/model/a/api/model/info?secret-query=1", headers={**bearer(signed), "Request-ID": "log-1"})
        client.get("/model/a/api/model/info", headers={"Authorization": "Bearer not-a-token", "Request-ID": "log-2"})
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and '"log-2"' not in gateway.stderr:
        time.sleep(0.02)
    lines = [json.loads(line) for line in gateway.stderr_lines if '"legion.gateway.access"' in line]
    mine = {line["requestId"]: line for line in lines if line["requestId"] in ("log-1", "log-2")}
    assert mine["log-1"]["status"] == 200 and mine["log-2"]["status"] == 401
    assert mine["log-1"]["path"] == "/model/a/api/model/info"
    assert mine["log-1"]["deployment"] == "a" and mine["log-1"]["replica"].startswith("http://127.0.0.1:")
    assert mine["log-1"]["upstreamMs"] > 0 and mine["log-1"]["durationMs"] >= mine["log-1"]["upstreamMs"]
    assert signed not in gateway.stderr and signed.split(".")[2] not in gateway.stderr
    assert "not-a-token" not in gateway.stderr and "secret-query" not in gateway.stderr


def test_a_routing_change_takes_effect_within_a_second_and_drops_no_request(
    tmp_path: Path, replicas: dict[str, ServerProcess], signed: str
) -> None:
    routing = tmp_path / "routing.json"
    deployments = [deployment(n, [replicas[n].url]) for n in ("a", "b")]
    write_routing(routing, snapshot(deployments, [route("live", "/live", {"a": 100})]))
    with gateway_process(routing) as gateway:
        changed_at: list[float] = []
        first_b: list[float] = []
        answered = 0

        def seen(number: int, answer: Answer) -> None:
            nonlocal answered
            answered += 1
            if answered == 1500:  # the change happens under load
                write_routing(routing, snapshot(deployments, [route("live", "/live", {"b": 100})]))
                changed_at.append(time.monotonic())
            if changed_at and not first_b and answer.status == 200 and b'"name":"b"' in answer.body:
                first_b.append(time.monotonic())

        answers = asyncio.run(hammer(f"{gateway.url}/live/invoke", 6000, concurrency=8, headers=bearer(signed),
                                     on_answer=seen))  # fmt: skip
        statuses = [a.status for a in answers]
        assert statuses.count(200) == len(statuses) == 6000, {s: statuses.count(s) for s in set(statuses)}
        assert first_b, "the change never took effect"
        assert first_b[0] - changed_at[0] < 1.0
        assert answers[-1].json()["name"] == "b"  # type: ignore[index]

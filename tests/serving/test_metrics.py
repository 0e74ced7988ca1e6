"""``/metrics`` is real Prometheus text whose counters match the requests sent."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from tests.serving.toy_models import save_toy
from tests.support.server import ServerProcess, serving

GOOD = {"columns": ["a", "b", "s"], "data": [[1, 2.5, "x"]]}
BAD = {"columns": ["a", "b", "s"], "data": [["no", 2.5, "x"]]}


def scrape(url: str) -> dict[str, list[Sample]]:
    text = httpx.get(f"{url}/metrics").text
    return {family.name: family.samples for family in text_string_to_metric_families(text)}


def value(samples: list[Sample], name: str, **labels: str) -> float:
    return sum(s.value for s in samples if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()))


@pytest.fixture
def toy_model(tmp_path: Path) -> Path:
    return save_toy(tmp_path / "model")


@pytest.fixture
def fresh_server(toy_model: Path) -> Iterator[ServerProcess]:
    with serving(toy_model) as server:
        yield server


def test_counters_match_the_requests_sent(fresh_server: ServerProcess) -> None:
    with httpx.Client() as client:
        for _ in range(7):
            assert client.post(f"{fresh_server.url}/api/model/invoke", json=GOOD).status_code == 200
        for _ in range(3):
            assert client.post(f"{fresh_server.url}/invocations", json={"dataframe_split": BAD}).status_code == 422
        client.get(f"{fresh_server.url}/healthcheck")  # not a model API request: not counted
    metrics = scrape(fresh_server.url)
    requests = metrics["legion_model_requests"]
    labels = {"model": "toy", "version": "1", "endpoint": "default"}
    assert value(requests, "legion_model_requests_total", code="200", **labels) == 7
    assert value(requests, "legion_model_requests_total", code="422", **labels) == 3
    assert value(metrics["legion_model_request_duration_seconds"], "legion_model_request_duration_seconds_count") == 10
    # only the valid requests reach the model
    assert value(metrics["legion_model_batch_size"], "legion_model_batch_size_count") == 7
    assert value(metrics["legion_model_queue_duration_seconds"], "legion_model_queue_duration_seconds_count") == 7
    assert value(metrics["legion_model_predict_duration_seconds"], "legion_model_predict_duration_seconds_count") == 7
    assert value(metrics["legion_model_requests_in_flight"], "legion_model_requests_in_flight", model="toy") == 0
    assert value(metrics["legion_model_ready"], "legion_model_ready", model="toy") == 1


def test_concurrent_requests_are_merged_into_batches(fresh_server: ServerProcess) -> None:
    total = 400
    url = f"{fresh_server.url}/api/model/invoke"
    with (
        httpx.Client(limits=httpx.Limits(max_connections=32)) as client,
        concurrent.futures.ThreadPoolExecutor(32) as pool,
    ):
        codes = list(pool.map(lambda _: client.post(url, json=GOOD).status_code, range(total)))
    assert codes == [200] * total
    metrics = scrape(fresh_server.url)
    batches = value(metrics["legion_model_batch_size"], "legion_model_batch_size_count")
    merged = value(metrics["legion_model_batch_size"], "legion_model_batch_size_sum")
    assert merged == total  # every request reached the model exactly once
    assert batches < total  # ... in fewer calls than requests: some were merged

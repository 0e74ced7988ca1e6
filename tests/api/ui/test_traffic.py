"""Live traffic for the dashboard: the histogram arithmetic, and a real model server scraped by ``TrafficMonitor``."""

from __future__ import annotations

import asyncio
import json
import math
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from legion.api.storage import StoredResource
from legion.api.ui.traffic import ReplicaCounters, TrafficMonitor, point_between, quantile
from tests.support.server import serving

ROOT = Path(__file__).resolve().parents[3]
INF = math.inf


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, [], None),
        (0.5, [(0.1, 0.0), (INF, 0.0)], None),
        (0.5, [(0.1, 10.0), (INF, 10.0)], 0.05),  # all in the first bucket: interpolated from 0
        (0.5, [(0.1, 0.0), (0.2, 10.0), (INF, 10.0)], 0.15),
        (0.95, [(0.1, 5.0), (0.2, 10.0), (INF, 10.0)], 0.19),
        (0.99, [(0.1, 5.0), (INF, 10.0)], 0.1),  # in the +Inf bucket: the last finite bound is all that is known
        (1.0, [(0.1, 10.0), (0.2, 10.0), (INF, 10.0)], 0.1),
    ],
)
def test_quantile_interpolates_like_histogram_quantile(
    q: float, buckets: list[tuple[float, float]], expected: float | None
) -> None:
    found = quantile(q, buckets)
    assert found == expected if expected is None else found == pytest.approx(expected)


def test_a_restarted_replica_counts_from_zero() -> None:
    before = {"a": ReplicaCounters(requests=100.0, latency_buckets=((0.1, 100.0), (INF, 100.0)))}
    now = {"a": ReplicaCounters(requests=4.0, latency_buckets=((0.1, 4.0), (INF, 4.0)))}
    point = point_between(10.0, 2.0, now, before)
    assert point.requests_per_s == 2.0
    assert point.p50_s == pytest.approx(0.05)


def test_a_new_replica_counts_everything_it_served() -> None:
    now = {"a": ReplicaCounters(requests=6.0), "b": ReplicaCounters(requests=4.0, errors=2.0)}
    point = point_between(10.0, 2.0, now, {"a": ReplicaCounters(requests=2.0)})
    assert (point.requests_per_s, point.errors_per_s, point.p50_s) == (4.0, 1.0, None)


def deployment(endpoints: list[str]) -> StoredResource:
    now = datetime.now(UTC)
    status = {"state": "Ready", "availableReplicas": len(endpoints), "endpoints": endpoints,
              "modelName": "census-income", "modelVersion": "1.0"}  # fmt: skip
    return StoredResource(
        "ModelDeployment", "census", {"image": "x", "minReplicas": 1}, status, {}, now, now, 1, 1, False
    )


def test_requests_to_a_real_replica_become_a_point(census_model_dir: Path) -> None:
    request = json.loads((ROOT / "examples" / "census_income" / "request.json").read_text())
    times = iter([100.0, 102.0])
    with serving(census_model_dir) as server:
        gone = "http://127.0.0.1:9"  # a replica that went away between status and scrape has no point
        monitor = TrafficMonitor(
            lambda: [deployment([server.url, gone])], min_interval_s=1.0, clock=lambda: next(times)
        )

        first = asyncio.run(monitor.snapshot())
        assert first["deployments"][0]["points"] == []
        for _ in range(10):
            assert httpx.post(f"{server.url}/api/model/invoke", json=request).status_code == 200
        [entry] = asyncio.run(monitor.snapshot())["deployments"]

    assert (entry["deployment"], entry["modelVersion"], entry["scrapedReplicas"]) == ("census", "1.0", 1)
    assert entry["totalRequests"] == 10
    [point] = entry["points"]
    assert point["time"] == 102.0
    assert point["requestsPerS"] == 5.0
    assert point["errorsPerS"] == 0.0
    assert 0 < point["p50Ms"] <= point["p95Ms"] < 10_000
    assert point["meanBatch"] >= 1

"""Live traffic per deployment for the dashboard's charts: ``GET /api/v1/ui/traffic``.

Every ready replica already counts its requests and times them (``legion_model_*`` on its ``/metrics``), so the
API reads those: at most once per ``min_interval_s`` whatever the number of open dashboards, it scrapes the
``endpoints`` in each ModelDeployment's status, and turns the difference from the previous scrape into one point
per deployment: requests/s, server errors/s and latency percentiles (interpolated in the histogram's buckets, as
Prometheus' ``histogram_quantile`` does). Counters that went down mean a replica restarted; its new value is the
increase, as Prometheus' ``rate`` assumes. The last ``max_points`` points are kept in memory, so a page opened
late still draws a few minutes of history. With Prometheus running, Grafana shows the same from
``deploy/grafana``; this is the zero-infrastructure view.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import APIRouter, Depends
from prometheus_client.parser import text_string_to_metric_families

from legion.api.auth import Caller
from legion.api.storage import StoredResource


@dataclass(frozen=True, slots=True)
class ReplicaCounters:
    """Cumulative counters read from one replica's ``/metrics``."""

    requests: float = 0.0
    errors: float = 0.0
    """Answers with a 5xx code."""
    latency_buckets: tuple[tuple[float, float], ...] = ()
    """``(upper bound s, cumulative count)`` of ``legion_model_request_duration_seconds``, ascending."""
    batches: float = 0.0
    batched_requests: float = 0.0


@dataclass(frozen=True, slots=True)
class TrafficPoint:
    """What happened in one deployment between two scrapes."""

    time: float
    """Unix time of the later scrape, seconds."""
    requests_per_s: float
    errors_per_s: float
    p50_s: float | None
    p95_s: float | None
    """``None`` when no request was answered in the interval."""
    mean_batch: float | None


@dataclass
class _Deployment:
    replicas: dict[str, ReplicaCounters] = field(default_factory=dict)
    at: float = 0.0
    points: deque[TrafficPoint] = field(default_factory=deque)


def parse_counters(text: str) -> ReplicaCounters:
    """The counters the dashboard draws, summed over a replica's models and endpoints."""
    requests = errors = batches = batched = 0.0
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "legion_model_requests_total":
                requests += sample.value
                if sample.labels.get("code", "").startswith("5"):
                    errors += sample.value
            elif sample.name == "legion_model_request_duration_seconds_bucket":
                bound = float(sample.labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
            elif sample.name == "legion_model_batch_size_count":
                batches += sample.value
            elif sample.name == "legion_model_batch_size_sum":
                batched += sample.value
    return ReplicaCounters(requests, errors, tuple(sorted(buckets.items())), batches, batched)


def _increase(now: float, before: float) -> float:
    return now if now < before else now - before  # a restarted replica counts from zero again


def quantile(q: float, buckets: Sequence[tuple[float, float]]) -> float | None:
    """``histogram_quantile``: the ``q`` quantile of cumulative ``(upper bound, count)`` buckets, or ``None``."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower_bound, lower_count = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if math.isinf(bound):
                return lower_bound  # beyond the last finite bucket: its bound is all that is known
            if count == lower_count:
                return bound
            return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
        lower_bound, lower_count = bound, count
    return lower_bound


def point_between(
    at: float, elapsed_s: float, now: dict[str, ReplicaCounters], before: dict[str, ReplicaCounters]
) -> TrafficPoint:
    """One point from the replicas' counters now and at the previous scrape (``elapsed_s`` ago)."""
    requests = errors = batches = batched = 0.0
    buckets: dict[float, float] = {}
    for endpoint, counters in now.items():
        old = before.get(endpoint)
        reset = old is not None and counters.requests < old.requests
        base = ReplicaCounters() if old is None or reset else old
        requests += _increase(counters.requests, base.requests)
        errors += _increase(counters.errors, base.errors)
        batches += _increase(counters.batches, base.batches)
        batched += _increase(counters.batched_requests, base.batched_requests)
        old_buckets = dict(base.latency_buckets)
        for bound, count in counters.latency_buckets:
            buckets[bound] = buckets.get(bound, 0.0) + _increase(count, old_buckets.get(bound, 0.0))
    ordered = sorted(buckets.items())
    span = max(elapsed_s, 1e-9)
    return TrafficPoint(
        time=at,
        requests_per_s=requests / span,
        errors_per_s=errors / span,
        p50_s=quantile(0.5, ordered),
        p95_s=quantile(0.95, ordered),
        mean_batch=batched / batches if batches else None,
    )


class TrafficMonitor:
    """Scrapes the replicas of every deployment on demand (throttled) and keeps recent points per deployment.

    ``deployments`` lists the stored ModelDeployments (blocking; run in a thread). Usage::

        monitor = TrafficMonitor(lambda: store.all("ModelDeployment"))
        snapshot = await monitor.snapshot()  # {"deployments": [{"deployment": "census", "points": [...]}, ...]}
    """

    def __init__(
        self,
        deployments: Callable[[], Sequence[StoredResource]],
        *,
        min_interval_s: float = 1.0,
        max_points: int = 150,
        scrape_timeout_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._list = deployments
        self.min_interval_s = min_interval_s
        self.max_points = max_points
        self.scrape_timeout_s = scrape_timeout_s
        self._clock = clock
        self._seen: dict[str, _Deployment] = {}
        self._documents: list[StoredResource] = []
        self._sampled_at = -math.inf
        self._lock = asyncio.Lock()

    async def snapshot(self) -> dict[str, Any]:
        """The wire document: one entry per deployment with its status and recent points."""
        async with self._lock:
            now = self._clock()
            if now - self._sampled_at >= self.min_interval_s:
                await self._sample(now)
        return {"intervalS": self.min_interval_s, "deployments": [self._entry(d) for d in self._documents]}

    async def _sample(self, at: float) -> None:
        documents = list(await asyncio.to_thread(self._list))
        endpoints = endpoints_of(documents)
        async with httpx.AsyncClient(timeout=self.scrape_timeout_s) as client:
            scraped = await asyncio.gather(*(self._scrape(client, e) for urls in endpoints.values() for e in urls))
        read = dict(zip((e for urls in endpoints.values() for e in urls), scraped, strict=True))
        for ident, urls in endpoints.items():
            now = {url: counters for url in urls if (counters := read[url]) is not None}
            seen = self._seen.setdefault(ident, _Deployment(points=deque(maxlen=self.max_points)))
            if seen.at:
                seen.points.append(point_between(at, at - seen.at, now, seen.replicas))
            seen.replicas, seen.at = now, at
        for gone in set(self._seen) - set(endpoints):
            del self._seen[gone]
        self._documents, self._sampled_at = documents, at

    @staticmethod
    async def _scrape(client: httpx.AsyncClient, endpoint: str) -> ReplicaCounters | None:
        try:
            answer = await client.get(f"{endpoint.rstrip('/')}/metrics")
            answer.raise_for_status()
            return parse_counters(answer.text)
        except (httpx.HTTPError, ValueError):
            return None  # a replica going away between status and scrape: it simply has no point

    def _entry(self, document: StoredResource) -> dict[str, Any]:
        seen = self._seen.get(document.id, _Deployment())
        status = document.status
        return {
            "deployment": document.id,
            "modelName": status.get("modelName"),
            "modelVersion": status.get("modelVersion"),
            "state": status.get("state"),
            "availableReplicas": status.get("availableReplicas", 0),
            "scrapedReplicas": len(seen.replicas),
            "totalRequests": sum(c.requests for c in seen.replicas.values()),
            "totalErrors": sum(c.errors for c in seen.replicas.values()),
            "points": [_wire_point(p) for p in seen.points],
        }


def _wire_point(point: TrafficPoint) -> dict[str, Any]:
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value * 1000.0, 3)

    return {
        "time": point.time,
        "requestsPerS": round(point.requests_per_s, 3),
        "errorsPerS": round(point.errors_per_s, 3),
        "p50Ms": ms(point.p50_s),
        "p95Ms": ms(point.p95_s),
        "meanBatch": None if point.mean_batch is None else round(point.mean_batch, 2),
    }


def traffic_router(monitor: TrafficMonitor, caller: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1/ui", tags=["dashboard"])

    @router.get("/traffic", summary="Recent requests/s, errors/s and latency per deployment (from its replicas)")
    async def traffic(who: Caller = Depends(caller)) -> dict[str, Any]:
        who.can_read()
        return await monitor.snapshot()

    return router


def endpoints_of(documents: Iterable[StoredResource]) -> dict[str, list[str]]:
    """Replica base URLs per deployment, as their status says."""
    return {d.id: [str(e) for e in d.status.get("endpoints") or ()] for d in documents}

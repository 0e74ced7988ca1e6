"""Prometheus metrics of the management API (``legion_api_*``), on one registry per app, served at ``/metrics``.

The vocabulary is the model server's (``legion.serving.metrics``): counters by ``code``, durations in seconds as
histograms with the same buckets, snake-case label names. What is measured:

- every HTTP request, by route *template* (``/api/v1/model/deployment/{resource_id}``, never the raw path, so the
  label set stays bounded), method and status code, and its duration (``MetricsMiddleware``);
- every reconcile step, by kind and outcome (``settled``, ``retry``, ``failed``, ``done``, ``gone``, ``error``),
  fed by the reconcile loop's ``on_step`` hook;
- at scrape time: the reconcile queue (objects due for a look now, and scheduled in all), objects by kind and state
  (``ResourceStore.kinds_count``), and each deployment's desired and available replicas (for "replica down").

``create_app`` wires it; ``/metrics`` takes the same auth as the rest of the API (Prometheus sends a viewer token).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from legion.api.auth import Caller
from legion.api.storage import ResourceStore
from legion.hosting.metrics import exposition

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
UNMATCHED_ROUTE = "<unmatched>"
"""The ``route`` label of a request no route matched (a 404 of an unknown path), so scans add no label values."""


class ApiMetrics:
    """The collectors, and ``exposition`` that refreshes the scrape-time gauges before rendering."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.before_scrape: list[Callable[[], None]] = []
        """Refreshers of scrape-time gauges that live elsewhere (the feedback store's), run under the lock."""
        self.requests = Counter(
            "legion_api_requests", "Management API requests answered, by route template, method and status code.",
            ("route", "method", "code"), registry=self.registry,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "legion_api_request_duration_seconds", "Time from request to the end of the response, in the API.",
            ("route", "method"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.reconcile_seconds = Histogram(
            "legion_api_reconcile_duration_seconds", "Time of one reconcile step for one object, by its outcome.",
            ("kind", "outcome"), buckets=LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.reconcile_due = Gauge(
            "legion_api_reconcile_queue_depth", "Objects due for a reconcile step now (the loop's backlog).",
            registry=self.registry,
        )  # fmt: skip
        self.reconcile_scheduled = Gauge(
            "legion_api_reconcile_scheduled", "Objects the reconcile loop will look at, now or later.",
            registry=self.registry,
        )  # fmt: skip
        self.objects = Gauge(
            "legion_api_objects", "Stored resources by kind and status.state ('' when a kind has no state).",
            ("kind", "state"), registry=self.registry,
        )  # fmt: skip
        self.replicas_desired = Gauge(
            "legion_api_deployment_replicas_desired", "Replicas a ModelDeployment should have ready (minReplicas).",
            ("deployment",), registry=self.registry,
        )  # fmt: skip
        self.replicas_available = Gauge(
            "legion_api_deployment_replicas_available", "Ready replicas of a ModelDeployment, as last reconciled.",
            ("deployment",), registry=self.registry,
        )  # fmt: skip
        self.routing_long_polls = Gauge(
            "legion_api_routing_long_polls", "Routing long-polls held open now (gateway workers following this API).",
            registry=self.registry,
        )  # fmt: skip
        self._refresh = threading.Lock()

    def observe_reconcile(self, kind: str, outcome: str, seconds: float) -> None:
        """The reconcile loop's ``on_step`` hook."""
        self.reconcile_seconds.labels(kind, outcome).observe(seconds)

    def set_queue(self, due: int, scheduled: int) -> None:
        """The reconcile queue as read on the loop's own thread, just before a scrape."""
        self.reconcile_due.set(due)
        self.reconcile_scheduled.set(scheduled)

    def exposition(self, store: ResourceStore) -> bytes:
        """The text format for ``/metrics``, with the stored objects counted now (blocking: call in a thread)."""
        counts = store.kinds_count()
        deployments = store.all("ModelDeployment")
        with self._refresh:  # two scrapes at once must not interleave clear() and set()
            self.objects.clear()
            for kind, states in counts.items():
                for state, count in states.items():
                    self.objects.labels(kind, state).set(count)
            self.replicas_desired.clear()
            self.replicas_available.clear()
            for deployment in deployments:
                self.replicas_desired.labels(deployment.id).set(int(deployment.spec.get("minReplicas", 1)))
                self.replicas_available.labels(deployment.id).set(int(deployment.status.get("availableReplicas", 0)))
            for refresh in self.before_scrape:
                refresh()
            return exposition(self.registry)


def _route_of(scope: Scope) -> str:
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None) or getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED_ROUTE


class MetricsMiddleware:
    """Counts and times every HTTP request by the route that matched it (raw ASGI: streaming responses pass)."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics, clock: Callable[[], float] = time.perf_counter) -> None:
        self.app = app
        self.metrics = metrics
        self.clock = clock

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = self.clock()
        code = 500  # what the caller gets when the app raises before it answers

        async def send_status(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route, method = _route_of(scope), scope["method"]
            self.metrics.requests.labels(route, method, str(code)).inc()
            self.metrics.request_seconds.labels(route, method).observe(self.clock() - started)


def metrics_router(
    metrics: ApiMetrics, store: ResourceStore, queue_depth: Callable[[], tuple[int, int]] | None, caller: Any
) -> APIRouter:
    """``GET /metrics``; ``queue_depth`` is the reconcile loop's (``None`` when the API runs no loop)."""
    router = APIRouter(tags=["health"])

    @router.get("/metrics", summary="Prometheus metrics of the management API", response_class=Response)
    async def scrape(who: Caller = Depends(caller)) -> Response:
        who.can_read()
        if queue_depth is not None:
            metrics.set_queue(*queue_depth())  # on the loop's thread, where the schedule lives
        body = await asyncio.to_thread(metrics.exposition, store)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return router

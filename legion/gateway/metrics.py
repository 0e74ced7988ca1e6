"""Prometheus metrics of the gateway, on one registry per app (aggregated over workers in multiprocess mode).

Every request is counted by route, deployment and status code. Its time is split three ways, so a slow model,
a cold start and a slow gateway are told apart: the whole time in the gateway, the time waiting for replicas
(``upstream``), and the gateway's own time (``overhead``: the whole minus upstream and cold-start waits).
Label values are bounded: ``route`` is a ModelRoute id or one of ``deployment``, ``version``, ``feedback`` and
``none`` (nothing matched), ``deployment`` a deployment id or empty.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from legion.hosting.metrics import exposition

_LATENCY_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_WAIT_BUCKETS = (0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)


class GatewayMetrics:
    """The collectors; ``observe`` resolves label children once per (route, deployment, code)."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("route", "deployment")
        self.requests = Counter(
            "legion_gateway_requests", "Requests answered by the gateway, by status code.",
            (*labels, "code"), registry=self.registry,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "legion_gateway_request_duration_seconds", "Whole time from request to answer, in the gateway.",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.upstream_seconds = Histogram(
            "legion_gateway_upstream_duration_seconds", "Time waiting for replicas to answer (all attempts).",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.overhead_seconds = Histogram(
            "legion_gateway_overhead_duration_seconds",
            "The gateway's own time: the whole time minus upstream and cold-start waits.",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.cold_start_seconds = Histogram(
            "legion_gateway_cold_start_wait_seconds", "Time requests waited for a deployment's first replica.",
            ("deployment",), buckets=_WAIT_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.retries = Counter(
            "legion_gateway_upstream_retries", "Requests sent to another replica after one failed.",
            ("deployment", "reason"), registry=self.registry,
        )  # fmt: skip
        self.mirrored = Counter(
            "legion_gateway_mirror_requests", "Mirrored copies by outcome (2xx..5xx, failed, dropped, unavailable).",
            ("deployment", "outcome"), registry=self.registry,
        )  # fmt: skip
        self.prediction_log_dropped = Counter(
            "legion_gateway_prediction_log_dropped",
            "Predictions answered without their records: the prediction log's buffer was full or unwritable.",
            registry=self.registry,
        )  # fmt: skip
        self.routing_updates = Counter(
            "legion_gateway_routing_updates", "Routing tables installed.", registry=self.registry
        )
        self.in_flight = Gauge(
            "legion_gateway_requests_in_flight", "Requests being handled now.",
            registry=self.registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self._children: dict[tuple[str, str, int], tuple[Any, Any, Any, Any]] = {}

    def observe(self, route: str, deployment: str, code: int, *, total_s: float, upstream_s: float,
                waited_s: float) -> None:  # fmt: skip
        key = (route, deployment, code)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(route, deployment, str(code)),
                self.request_seconds.labels(route, deployment),
                self.upstream_seconds.labels(route, deployment),
                self.overhead_seconds.labels(route, deployment),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(total_s)
        if upstream_s:
            children[2].observe(upstream_s)
        children[3].observe(max(total_s - upstream_s - waited_s, 0.0))

    def exposition(self) -> bytes:
        """The text format for ``/metrics``, aggregated over workers in multiprocess mode."""
        return exposition(self.registry, self.multiprocess_dir)

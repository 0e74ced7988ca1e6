"""Prometheus metrics of the model server, on one registry per app.

Names follow Legion's vocabulary (``legion_model_*``); latency is split into time queued for a batch and time
in the model, so a slow model is told apart from an overloaded one. With several workers the values live in
``PROMETHEUS_MULTIPROC_DIR`` and ``/metrics`` aggregates them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from legion.hosting.metrics import exposition

_LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)


class ServerMetrics:
    """The collectors; label values are resolved once per endpoint by ``for_endpoint``."""

    def __init__(self, multiprocess_dir: str | None = None) -> None:
        self.multiprocess_dir = multiprocess_dir
        self.registry = CollectorRegistry(auto_describe=True)
        labels = ("model", "version", "endpoint")
        self.requests = Counter(
            "legion_model_requests", "Model API requests answered, by status code.",
            (*labels, "code"), registry=self.registry,
        )  # fmt: skip
        self.request_seconds = Histogram(
            "legion_model_request_duration_seconds", "Time from request to response, in the server.",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.queue_seconds = Histogram(
            "legion_model_queue_duration_seconds", "Time a request waited for its batch to reach the model.",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.predict_seconds = Histogram(
            "legion_model_predict_duration_seconds", "Time inside the model per call (one batch).",
            labels, buckets=_LATENCY_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_size = Histogram(
            "legion_model_batch_size", "Requests merged into one model call.",
            labels, buckets=_BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.batch_rows = Histogram(
            "legion_model_batch_rows", "Rows passed to one model call.",
            labels, buckets=_BATCH_BUCKETS, registry=self.registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "legion_model_requests_in_flight", "Requests being handled now.",
            ("model", "version"), registry=self.registry, multiprocess_mode="livesum",
        )  # fmt: skip
        self.ready = Gauge(
            "legion_model_ready", "1 once the model is loaded and serving.",
            ("model", "version"), registry=self.registry, multiprocess_mode="max",
        )  # fmt: skip

    def exposition(self) -> bytes:
        """The text format for ``/metrics``, aggregated over workers in multiprocess mode."""
        return exposition(self.registry, self.multiprocess_dir)

"""``exposition``: the Prometheus text format of a service's registry, aggregated over workers when they share a
multiprocess directory. Each service's ``*Metrics`` keeps its collectors and calls this for ``/metrics``."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector


def exposition(registry: CollectorRegistry, multiprocess_dir: str | None = None) -> bytes:
    """The text format of ``registry``; with a ``multiprocess_dir``, of every worker's values in it instead."""
    if multiprocess_dir:
        merged = CollectorRegistry()
        MultiProcessCollector(merged, path=multiprocess_dir)  # type: ignore[no-untyped-call]  # untyped library
        return generate_latest(merged)
    return generate_latest(registry)

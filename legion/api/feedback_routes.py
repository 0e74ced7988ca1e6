"""The feedback store's HTTP side: ``POST /api/v1/feedback/records`` and its metrics.

Gateways ship their prediction and feedback records here (besides their own sink) in batches, at least once;
``FeedbackStore`` joins them by request id. Only a gateway's token (role ``gateway``) or an admin may post. A body
that is not a JSON list of objects is a 400 naming the problem; records the store cannot use are counted and
skipped, never a 500. The store itself is the dashboard's ``FeedbackReader``, and
``FeedbackMetrics`` adds the store's figures to the API's ``/metrics``:

- ``legion_feedback_records_total{model, version, tag}``: records received (duplicates included);
- ``legion_feedback_accuracy{model, version}`` and ``legion_feedback_mean_absolute_error{model, version}``: over
  the predictions made in the last ``window_s`` (the API's ``feedback_window_s``);
- ``legion_feedback_scored{model, version}``: rows scored in that window.
"""

from __future__ import annotations

import asyncio
from typing import Any, Final

from fastapi import APIRouter, Depends, Request
from prometheus_client import CollectorRegistry, Counter, Gauge

from legion.api.auth import Caller
from legion.api.bodies import read_document
from legion.api.openapi import problem_answers
from legion.api.storage.feedback import FeedbackStore
from legion.core.errors import BadRequestError, PayloadTooLargeError

MAX_RECORDS: Final = 10_000


class FeedbackMetrics:
    """The store's collectors on the API's registry; ``refresh`` sets the window gauges before a scrape."""

    def __init__(self, registry: CollectorRegistry, store: FeedbackStore, window_s: float) -> None:
        self.store = store
        self.window_s = window_s
        self.records = Counter(
            "legion_feedback_records", "Prediction and feedback records received by the feedback store.",
            ("model", "version", "tag"), registry=registry,
        )  # fmt: skip
        self.accuracy = Gauge(
            "legion_feedback_accuracy", "Share of a classifier's predictions that the feedback agrees with (0..1), "
            "over the predictions made in the quality window.", ("model", "version"), registry=registry,
        )  # fmt: skip
        self.mean_absolute_error = Gauge(
            "legion_feedback_mean_absolute_error", "Mean |prediction - truth| of a regressor, over the predictions "
            "made in the quality window.", ("model", "version"), registry=registry,
        )  # fmt: skip
        self.scored = Gauge(
            "legion_feedback_scored", "Prediction rows scored against feedback in the quality window.",
            ("model", "version"), registry=registry,
        )  # fmt: skip

    def refresh(self) -> None:
        """Read the window's scores (blocking: call in a thread, under the exposition's lock)."""
        scores = self.store.quality(self.window_s)
        for gauge in (self.accuracy, self.mean_absolute_error, self.scored):
            gauge.clear()
        for score in scores:
            labels = (score.model_name, score.model_version)
            self.scored.labels(*labels).set(score.compared)
            if score.accuracy is not None:
                self.accuracy.labels(*labels).set(score.accuracy)
            if score.mean_absolute_error is not None:
                self.mean_absolute_error.labels(*labels).set(score.mean_absolute_error)


def records_router(store: FeedbackStore, metrics: FeedbackMetrics, caller: Any, max_body_bytes: int) -> APIRouter:
    router = APIRouter(prefix="/api/v1/feedback", tags=["feedback"])

    records = {"requestBody": {"required": True, "content": {"application/json": {"schema": {
        "type": "array", "items": {"type": "object"}}}}}}  # fmt: skip

    @router.post(
        "/records",
        summary="Deliver prediction and feedback records (gateways ship here)",
        openapi_extra=records,
        responses=problem_answers(**{"422": "A record is not a prediction or feedback record; the detail says why"}),
    )
    async def deliver(request: Request, who: Caller = Depends(caller)) -> dict[str, int]:
        who.can_write_records()
        batch = await read_document(request, max_body_bytes)
        if not isinstance(batch, list) or not all(isinstance(r, dict) for r in batch):
            raise BadRequestError("send a JSON list of record objects")
        if len(batch) > MAX_RECORDS:
            raise PayloadTooLargeError(f"{len(batch)} records in one batch; send at most {MAX_RECORDS}")
        counts = await asyncio.to_thread(store.ingest, batch)
        for (model, version, tag), count in counts.items():
            metrics.records.labels(model, version, tag).inc(count)
        return {"received": len(batch)}

    return router

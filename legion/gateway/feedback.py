"""Feedback through the gateway: ``POST /feedback/model/<deployment>`` and ``/api/model/<name>/<version>/feedback``.

The gateway resolves and authorizes the request, then hands it to a ``FeedbackHandler``. The default handler
checks what DESIGN §5 asks (a ``Request-ID`` sent by the client, a JSON object as the body: 400 otherwise) and
passes a ``FeedbackRecord`` to a ``FeedbackSink``. Prediction logging and the feedback stores (a local
directory in Legion's ``model_log/feedback/...`` layout, S3, Fluentd) belong behind that sink seam; until
they exist the default sink writes one log line per record.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import orjson

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class FeedbackRequest:
    """A feedback call the gateway has resolved (404s are answered before) and authorized."""

    request_id: str | None  # as the client sent it; None when it sent none
    deployment: str
    model: tuple[str, str] | None  # (name, version) served by the deployment, when known
    body: bytes
    content_type: str


@dataclass(frozen=True, slots=True)
class FeedbackAnswer:
    status: int
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class FeedbackRecord:
    """Ground truth for one prediction, joined to it later by ``request_id``."""

    request_id: str
    deployment: str
    model_name: str | None
    model_version: str | None
    payload: dict[str, Any]
    received_at: float = field(default_factory=time.time)


class FeedbackHandler(Protocol):
    async def handle(self, request: FeedbackRequest) -> FeedbackAnswer: ...


class FeedbackSink(Protocol):
    async def record(self, record: FeedbackRecord) -> None:
        """Keep ``record`` (at least once); raise to make the caller get a 503 and send it again."""
        ...


class LogFeedbackSink:
    """Writes each record as a log line of ``legion.gateway.feedback`` (until issue 5's stores exist)."""

    async def record(self, record: FeedbackRecord) -> None:
        log.info("feedback %s for %s (%s %s): %d fields", record.request_id, record.deployment,
                 record.model_name, record.model_version, len(record.payload))  # fmt: skip


class MemoryFeedbackSink:
    """Keeps records in a list: for tests and for embedding the gateway."""

    def __init__(self) -> None:
        self.records: list[FeedbackRecord] = []

    async def record(self, record: FeedbackRecord) -> None:
        self.records.append(record)


class RecordingFeedbackHandler:
    """DESIGN §5's checks, then the record to ``sink``; 200 ``{"message", "requestId"}`` when kept."""

    def __init__(self, sink: FeedbackSink) -> None:
        self.sink = sink

    async def handle(self, request: FeedbackRequest) -> FeedbackAnswer:
        if not request.request_id:
            return FeedbackAnswer(400, {"error": "send the Request-ID header of the prediction this feedback is for"})
        if request.content_type and request.content_type not in ("application/json", "text/json"):
            return FeedbackAnswer(400, {"error": f"content type {request.content_type!r}: send application/json"})
        try:
            payload = orjson.loads(request.body)
        except orjson.JSONDecodeError as exc:
            return FeedbackAnswer(400, {"error": f"the request body is not valid JSON: {exc}"})
        if not isinstance(payload, dict) or not payload:
            return FeedbackAnswer(400, {"error": "send the ground truth as a non-empty JSON object"})
        name, version = request.model if request.model else (None, None)
        record = FeedbackRecord(request.request_id, request.deployment, name, version, payload)
        try:
            await self.sink.record(record)
        except Exception as exc:
            log.warning("feedback %s not kept: %r", request.request_id, exc)
            return FeedbackAnswer(503, {"error": "the feedback could not be kept; send it again"})
        return FeedbackAnswer(200, {"message": "feedback recorded", "requestId": request.request_id})

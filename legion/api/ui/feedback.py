"""The seam between the dashboard and the feedback store: ``GET /api/v1/quality`` and ``GET /api/v1/predictions``.

The feedback store (prediction records joined to ground truth by request id) is built elsewhere. Until it exists
the API is given ``NoFeedback``, both routes answer ``[]`` and the dashboard says "no feedback yet" and "no
predictions logged yet". The store plugs in by implementing ``FeedbackReader`` and being passed to
``feedback_router`` in ``create_app``; the wire shapes below are the contract the dashboard reads.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Depends, Query

from legion.api.auth import Caller


@dataclass(frozen=True, slots=True)
class VersionQuality:
    """Online quality of one model version: feedback joined to its predictions."""

    model_name: str
    model_version: str
    feedback_count: int
    accuracy: float | None
    """Share of predictions the feedback agrees with (0..1); ``None`` while no feedback is joined."""
    points: tuple[tuple[float, float], ...] = ()
    """``(unix time s, accuracy)`` over time, oldest first, for the chart."""


@dataclass(frozen=True, slots=True)
class PredictionRecord:
    """One logged prediction and the feedback that came back for it (``None`` until it does)."""

    request_id: str
    deployment: str
    model_name: str
    model_version: str
    time: float
    """Unix time in seconds."""
    status: int
    latency_s: float
    inputs: Any
    outputs: Any
    feedback: Any | None = None


class FeedbackReader(Protocol):
    """What the dashboard needs from the feedback store."""

    def quality(self) -> list[VersionQuality]: ...

    def predictions(self, deployment: str | None, limit: int) -> list[PredictionRecord]: ...


class NoFeedback:
    """The reader while no feedback store exists: nothing logged, nothing joined."""

    def quality(self) -> list[VersionQuality]:
        return []

    def predictions(self, deployment: str | None, limit: int) -> list[PredictionRecord]:
        return []


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _wire(value: VersionQuality | PredictionRecord) -> dict[str, Any]:
    return {_camel(key): item for key, item in asdict(value).items()}


def feedback_router(reader: FeedbackReader, caller: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1", tags=["feedback"])

    @router.get("/quality", summary="Online quality (accuracy from feedback) per model version")
    async def quality(who: Caller = Depends(caller)) -> list[dict[str, Any]]:
        who.can_read()
        return [_wire(q) for q in await asyncio.to_thread(reader.quality)]

    @router.get("/predictions", summary="Recent predictions with their feedback, newest first")
    async def predictions(
        deployment: str | None = None, limit: int = Query(default=20, ge=1, le=500), who: Caller = Depends(caller)
    ) -> list[dict[str, Any]]:
        who.can_read()
        return [_wire(p) for p in await asyncio.to_thread(reader.predictions, deployment, limit)]

    return router

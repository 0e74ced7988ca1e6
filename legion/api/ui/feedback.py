"""The seam between the dashboard and the feedback store: ``GET /api/v1/quality`` and ``GET /api/v1/predictions``.

The feedback store (prediction records joined to ground truth by request id, ``legion.api.feedback_routes``)
implements ``FeedbackReader`` and is passed to ``feedback_router`` in ``create_app``; an API without one is given
``NoFeedback`` (both routes answer ``[]``, the dashboard says "no feedback yet"). The wire shapes below are the
contract the dashboard reads. ``/api/v1/quality?window=<seconds>`` scores the predictions made in that window.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from fastapi import APIRouter, Depends, Query

from legion.api.auth import Caller
from legion.api.storage.feedback import LoggedPrediction as PredictionRecord  # the wire shape of /predictions

__all__ = ["FeedbackReader", "NoFeedback", "PredictionRecord", "VersionQuality", "feedback_router"]


@dataclass(frozen=True, slots=True)
class VersionQuality:
    """Online quality of one model version: feedback joined to its predictions."""

    model_name: str
    model_version: str
    feedback_count: int
    """Predictions joined to feedback in the window."""
    accuracy: float | None
    """Share of predictions the feedback agrees with (0..1); ``None`` for a regressor or while nothing is joined."""
    points: tuple[tuple[float, float], ...] = ()
    """``(unix time s, accuracy or mean absolute error)`` per minute, oldest first, for the chart."""
    mean_absolute_error: float | None = None
    """For a regressor: mean of |prediction - truth|; ``None`` for a classifier."""
    compared: int = 0
    """Rows scored (a request of several rows scores each)."""
    correct: int = 0
    """Rows a classifier got right."""
    window_s: float = 0.0
    """The window, in seconds, the figures cover (predictions made in the last ``window_s``)."""


class FeedbackReader(Protocol):
    """What the dashboard needs from the feedback store."""

    def quality(self, window_s: float) -> list[VersionQuality]: ...

    def predictions(self, deployment: str | None, limit: int) -> list[PredictionRecord]: ...


class NoFeedback:
    """The reader while no feedback store exists: nothing logged, nothing joined."""

    def quality(self, window_s: float) -> list[VersionQuality]:
        return []

    def predictions(self, deployment: str | None, limit: int) -> list[PredictionRecord]:
        return []


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def _wire(value: VersionQuality | PredictionRecord) -> dict[str, Any]:
    return {_camel(key): item for key, item in asdict(value).items()}


def feedback_router(reader: FeedbackReader, caller: Any, window_s: float = 3600.0) -> APIRouter:
    """The two routes; ``window_s`` is the window ``/quality`` covers when the caller names none."""
    router = APIRouter(prefix="/api/v1", tags=["feedback"])

    @router.get("/quality", summary="Online quality (accuracy or mean absolute error from feedback) per model version")
    async def quality(
        window: float = Query(default=window_s, gt=0, le=366 * 86400, description="seconds back from now"),
        who: Caller = Depends(caller),
    ) -> list[dict[str, Any]]:
        who.can_read()
        return [_wire(q) for q in await asyncio.to_thread(reader.quality, window)]

    @router.get("/predictions", summary="Recent predictions with their feedback, newest first")
    async def predictions(
        deployment: str | None = None, limit: int = Query(default=20, ge=1, le=500), who: Caller = Depends(caller)
    ) -> list[dict[str, Any]]:
        who.can_read()
        return [_wire(p) for p in await asyncio.to_thread(reader.predictions, deployment, limit)]

    return router

"""The seam between the dashboard and the feedback store: ``GET /api/v1/quality`` and ``GET /api/v1/predictions``.

The feedback store (prediction records joined to ground truth by request id, ``legion.api.feedback_routes``)
implements ``FeedbackReader`` and is passed to ``feedback_router`` in ``create_app``; an API without one is given
``NoFeedback`` (both routes answer ``[]``, the dashboard says "no feedback yet"). The wire shapes below are the
contract the dashboard reads. ``/api/v1/quality?window=<seconds>`` scores the predictions made in that window.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Any, Protocol

from fastapi import APIRouter, Depends, Query

from legion.api.auth import Caller
from legion.api.storage.feedback import LoggedPrediction as PredictionRecord  # the wire shape of /predictions
from legion.api.storage.feedback import VersionQuality  # and of /quality

__all__ = ["FeedbackReader", "NoFeedback", "PredictionRecord", "VersionQuality", "feedback_router"]


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

"""``FeedbackStore``: logged predictions and ground truth, joined by request id, and the quality they add up to.

The gateway's shipper delivers batches of records (``legion.feedback.records``: ``request_response``,
``response_body``, ``feedback``), at least once, in any order: feedback may come hours after its prediction, or
before the prediction's records were flushed. ``ingest`` upserts each record by request id (a duplicate changes
nothing) and, whenever both halves of a request id are present and not yet scored, scores the prediction against
the truth (``legion.feedback.quality.compare``) on the feedback row. ``quality(window_s)`` adds up the scores of
predictions made in the last ``window_s`` seconds per model version: accuracy for classifiers, mean absolute
error for regressors, with counts. ``prune`` forgets what is older than the retention.

    store = FeedbackStore(engine)
    store.ingest(records)                # from POST /api/v1/feedback/records
    store.quality(window_s=3600)         # [VersionQuality(model_name="census-income", accuracy=0.81, ...)]
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Connection, Engine, delete, func, or_, select, update

from legion.api.storage.database import EngineUser, transaction, upsert
from legion.api.storage.tables import REQUEST_ID_LENGTH, FeedbackRow, PredictionRow
from legion.feedback.quality import compare
from legion.feedback.records import FEEDBACK, REQUEST_RESPONSE, RESPONSE_BODY

_CHUNK: Final = 500  # request ids per IN (...): well under every backend's parameter limit
_ANY: Final = "unknown"


@dataclass(frozen=True, slots=True)
class VersionQuality:
    """Online quality of one model version: feedback joined to its predictions (also ``/api/v1/quality``'s shape)."""

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


@dataclass(frozen=True, slots=True)
class LoggedPrediction:
    """One logged prediction and the ground truth sent for it (``None`` until it is)."""

    request_id: str
    deployment: str
    model_name: str
    model_version: str
    time: float
    status: int
    latency_s: float
    inputs: Any
    outputs: Any
    feedback: Any | None


def _unix(value: Any) -> float:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return datetime.fromisoformat(value).timestamp()
        except ValueError:
            pass
    return time.time()


def _text(value: Any, limit: int) -> str | None:
    return str(value)[:limit] if value not in (None, "") else None


class FeedbackStore(EngineUser):
    """Predictions and feedback in the API's database (see the module docstring)."""

    def __init__(self, bind: Engine | str, *, retention_s: float = 7 * 24 * 3600.0) -> None:
        super().__init__(bind)
        self.retention_s = retention_s
        self._lock = threading.Lock()  # one ingest at a time: two batches never race on the same request id
        self._pruned = 0.0

    def ingest(self, batch: Iterable[dict[str, Any]]) -> dict[tuple[str, str, str], int]:
        """Store the records, score what is joined; how many records came per (model, version, tag).

        Records of an unknown tag or without a usable request id are skipped (counted under tag ``invalid``).
        """
        counts: dict[tuple[str, str, str], int] = {}
        ids: set[str] = set()
        with self._lock, transaction(self._engine, write=True) as connection:
            for record in batch:
                tag = record.get("tag")
                rid = record.get("request_id")
                model = (str(record.get("model_name") or _ANY), str(record.get("model_version") or _ANY))
                if (
                    tag not in (REQUEST_RESPONSE, RESPONSE_BODY, FEEDBACK)
                    or not isinstance(rid, str)
                    or not (0 < len(rid) <= REQUEST_ID_LENGTH)
                ):
                    counts[(*model, "invalid")] = counts.get((*model, "invalid"), 0) + 1
                    continue
                counts[(*model, tag)] = counts.get((*model, tag), 0) + 1
                ids.add(rid)
                if tag == FEEDBACK:
                    self._feedback(connection, rid, record)
                else:
                    self._prediction(connection, rid, tag, record)
            self._score(connection, ids)
        if time.time() - self._pruned > 3600:
            self.prune()
        return counts

    def _upsert(self, connection: Connection, table: Any, values: dict[str, Any], update_keys: list[str]) -> None:
        statement = upsert(self._engine, table).values(**values)
        statement = statement.on_conflict_do_update(
            index_elements=["request_id"], set_={k: statement.excluded[k] for k in update_keys}
        )
        connection.execute(statement)

    def _prediction(self, connection: Connection, rid: str, tag: str, record: dict[str, Any]) -> None:
        values: dict[str, Any] = {
            "request_id": rid,
            "deployment": _text(record.get("deployment"), 253),
            "model_name": _text(record.get("model_name"), 253),
            "model_version": _text(record.get("model_version"), 128),
            "time": _unix(record.get("time")),
            "has_outputs": tag == RESPONSE_BODY,
        }
        if tag == REQUEST_RESPONSE:
            values |= {
                "endpoint": _text(record.get("model_endpoint"), 253),
                "status": record.get("response_status") if isinstance(record.get("response_status"), int) else None,
                "latency_s": _unix(record.get("response_duration_s")) if "response_duration_s" in record else None,
                "inputs": record.get("request_content"),
            }
            keys = ["deployment", "model_name", "model_version", "endpoint", "time", "status", "latency_s", "inputs"]
        else:
            values |= {"outputs": record.get("response_content")}
            keys = ["outputs", "has_outputs"]
        self._upsert(connection, PredictionRow, values, keys)

    def _feedback(self, connection: Connection, rid: str, record: dict[str, Any]) -> None:
        values = {
            "request_id": rid,
            "deployment": _text(record.get("deployment"), 253),
            "model_name": _text(record.get("model_name"), 253),
            "model_version": _text(record.get("model_version"), 128),
            "payload": record.get("payload"),
            "received": _unix(record.get("time")),
            "scored": False,
            "kind": None,
            "compared": 0,
            "correct": 0,
            "abs_error": 0.0,
        }
        self._upsert(connection, FeedbackRow, values, ["payload", "received", "scored", "kind", "compared",
                                                       "correct", "abs_error"])  # fmt: skip

    def _score(self, connection: Connection, ids: set[str]) -> None:
        """Score every joined, unscored pair among ``ids`` (the late half of a pair brings its id here)."""
        ordered = sorted(ids)
        for start in range(0, len(ordered), _CHUNK):
            chunk = ordered[start : start + _CHUNK]
            joined = connection.execute(
                select(
                    PredictionRow.request_id,
                    PredictionRow.outputs,
                    PredictionRow.time,
                    PredictionRow.model_name,
                    PredictionRow.model_version,
                    FeedbackRow.payload,
                )
                .join(FeedbackRow, FeedbackRow.request_id == PredictionRow.request_id)
                .where(PredictionRow.request_id.in_(chunk), PredictionRow.has_outputs, FeedbackRow.scored.is_(False))
            ).all()
            for rid, outputs, made, name, version, payload in joined:
                score = compare(outputs, payload)
                connection.execute(
                    update(FeedbackRow)
                    .where(FeedbackRow.request_id == rid)
                    .values(
                        scored=True,
                        kind=score.kind if score else None,
                        compared=score.compared if score else 0,
                        correct=score.correct if score else 0,
                        abs_error=score.abs_error if score else 0.0,
                        prediction_time=made,
                        model_name=name,
                        model_version=version,
                    )
                )

    def quality(self, window_s: float, now: float | None = None) -> list[VersionQuality]:
        """Scores of predictions made in the last ``window_s`` seconds, per model version."""
        since = (time.time() if now is None else now) - window_s
        with transaction(self._engine) as connection:
            rows = connection.execute(
                select(
                    FeedbackRow.model_name,
                    FeedbackRow.model_version,
                    FeedbackRow.kind,
                    FeedbackRow.prediction_time,
                    FeedbackRow.compared,
                    FeedbackRow.correct,
                    FeedbackRow.abs_error,
                )
                .where(FeedbackRow.kind.is_not(None), FeedbackRow.prediction_time >= since)
                .order_by(FeedbackRow.prediction_time)
            ).all()
        versions: dict[tuple[str, str], list[Any]] = {}
        for row in rows:
            versions.setdefault((row[0] or _ANY, row[1] or _ANY), []).append(row)
        return [self._version(key, items, window_s) for key, items in sorted(versions.items())]

    @staticmethod
    def _version(key: tuple[str, str], rows: list[Any], window_s: float) -> VersionQuality:
        classification = sum(r.kind == "classification" for r in rows) * 2 >= len(rows)
        rows = [r for r in rows if (r.kind == "classification") == classification]
        minutes: dict[int, list[float]] = {}
        for r in rows:
            bucket = minutes.setdefault(int(r.prediction_time // 60), [0.0, 0.0, 0.0])
            bucket[0] += r.compared
            bucket[1] += r.correct
            bucket[2] += r.abs_error
        points = tuple(
            (minute * 60.0, (b[1] if classification else b[2]) / b[0]) for minute, b in sorted(minutes.items()) if b[0]
        )
        compared, correct, abs_error = (sum(r.compared for r in rows), sum(r.correct for r in rows),
                                        sum(r.abs_error for r in rows))  # fmt: skip
        return VersionQuality(
            model_name=key[0], model_version=key[1], feedback_count=len(rows),
            accuracy=correct / compared if classification and compared else None, points=points,
            mean_absolute_error=abs_error / compared if not classification and compared else None,
            compared=compared, correct=correct, window_s=window_s,
        )  # fmt: skip

    def predictions(self, deployment: str | None, limit: int) -> list[LoggedPrediction]:
        """The newest logged predictions (of ``deployment``, when given) with their ground truth."""
        statement = (
            select(
                PredictionRow.request_id,
                PredictionRow.deployment,
                PredictionRow.model_name,
                PredictionRow.model_version,
                PredictionRow.time,
                PredictionRow.status,
                PredictionRow.latency_s,
                PredictionRow.inputs,
                PredictionRow.outputs,
                FeedbackRow.payload,
            )
            .outerjoin(FeedbackRow, FeedbackRow.request_id == PredictionRow.request_id)
            .order_by(PredictionRow.time.desc())
            .limit(limit)
        )
        if deployment is not None:
            statement = statement.where(PredictionRow.deployment == deployment)
        with transaction(self._engine) as connection:
            rows = connection.execute(statement).all()
        return list(self._logged(rows))

    @staticmethod
    def _logged(rows: Iterable[Any]) -> Iterator[LoggedPrediction]:
        for p in rows:
            yield LoggedPrediction(
                request_id=p.request_id, deployment=p.deployment or "", model_name=p.model_name or _ANY,
                model_version=p.model_version or _ANY, time=p.time, status=p.status or 0, latency_s=p.latency_s or 0.0,
                inputs=p.inputs, outputs=p.outputs, feedback=p.payload,
            )  # fmt: skip

    def prune(self, now: float | None = None) -> int:
        """Forget predictions and feedback older than the retention; how many rows went."""
        cutoff = (time.time() if now is None else now) - self.retention_s
        with transaction(self._engine, write=True) as connection:
            gone = connection.execute(delete(PredictionRow).where(PredictionRow.time < cutoff)).rowcount
            old = or_(FeedbackRow.received < cutoff, FeedbackRow.prediction_time < cutoff)
            gone += connection.execute(delete(FeedbackRow).where(old)).rowcount
        self._pruned = time.time()
        return int(gone)

    def counts(self) -> tuple[int, int]:
        """Predictions and feedback stored (for tests and the dashboard)."""
        with transaction(self._engine) as connection:
            predictions = connection.execute(select(func.count()).select_from(PredictionRow)).scalar_one()
            feedback = connection.execute(select(func.count()).select_from(FeedbackRow)).scalar_one()
        return int(predictions), int(feedback)

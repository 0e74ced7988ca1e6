"""The feedback store: predictions and ground truth joined by request id in any order, scored, windowed."""

from __future__ import annotations

import time
from typing import Any

import pytest
from sqlalchemy import Engine

from legion.api.storage.feedback import FeedbackStore
from legion.feedback import records

CLASSES = ["<=50K", ">50K"]


def prediction(rid: str, high: bool, *, at: float, version: str = "1.0") -> list[dict[str, Any]]:
    """The two records the gateway logs for one census prediction (``high``: the model says >50K)."""
    when = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime(at))
    return [
        records.request_response(
            request_id=rid, model_name="census-income", model_version=version, endpoint="default", method="POST",
            path="/api/model/invoke", headers={"content-type": "application/json"},
            request_body={"columns": ["age"], "data": [[40]]}, status=200, latency_s=0.004, deployment="census",
            time=when,
        ),
        records.response_body(
            request_id=rid, model_name="census-income", model_version=version, deployment="census", time=when,
            body={"prediction": [[0.2, 0.8] if high else [0.7, 0.3]], "columns": CLASSES},
        ),
    ]  # fmt: skip


def truth(rid: str, label: str) -> dict[str, Any]:
    return records.feedback(request_id=rid, model_name="", model_version="", payload={"income": label})


@pytest.fixture
def feedback_store(engine: Engine) -> FeedbackStore:
    return FeedbackStore(engine)


def test_feedback_joins_its_prediction_whichever_arrives_first(feedback_store: FeedbackStore) -> None:
    now = time.time()
    feedback_store.ingest([truth("early", ">50K")])  # before the prediction's records were flushed
    assert feedback_store.quality(3600) == []
    feedback_store.ingest(prediction("early", high=True, at=now) + prediction("late", high=True, at=now))
    feedback_store.ingest([truth("late", "<=50K")])  # after: hours later is the same path

    [score] = feedback_store.quality(3600, now=now + 1)

    assert (score.model_name, score.model_version) == ("census-income", "1.0")
    assert (score.feedback_count, score.compared, score.correct, score.accuracy) == (2, 2, 1, 0.5)


def test_redelivered_records_change_nothing(feedback_store: FeedbackStore) -> None:
    now = time.time()
    batch = [*prediction("a", high=False, at=now), truth("a", "<=50K")]
    counts = feedback_store.ingest(batch)
    feedback_store.ingest(batch)  # at least once: the shipper sends a batch again after a crash

    [score] = feedback_store.quality(3600, now=now)
    assert (score.feedback_count, score.compared, score.correct) == (1, 1, 1)
    assert feedback_store.counts() == (1, 1)
    assert counts == {("census-income", "1.0", "request_response"): 1, ("census-income", "1.0", "response_body"): 1,
                      ("unknown", "unknown", "feedback"): 1}  # fmt: skip


def test_quality_is_per_version_and_over_a_sliding_window(feedback_store: FeedbackStore) -> None:
    now = time.time()
    batch = [*prediction("old", high=True, at=now - 7200), truth("old", "<=50K")]  # wrong, two hours ago
    batch += [*prediction("v1", high=True, at=now - 60), truth("v1", ">50K")]
    batch += [*prediction("v2", high=True, at=now - 60, version="2.0"), truth("v2", "<=50K")]
    feedback_store.ingest(batch)

    last_hour = {(s.model_version, s.accuracy, s.compared) for s in feedback_store.quality(3600, now=now)}
    last_day = {(s.model_version, s.accuracy, s.compared) for s in feedback_store.quality(86400, now=now)}

    assert last_hour == {("1.0", 1.0, 1), ("2.0", 0.0, 1)}
    assert last_day == {("1.0", 0.5, 2), ("2.0", 0.0, 1)}


def test_a_regressor_is_scored_by_mean_absolute_error(feedback_store: FeedbackStore) -> None:
    now = time.time()
    feedback_store.ingest([
        records.response_body(request_id=f"r{i}", model_name="price", model_version="1", body={"prediction": [[p]]})
        for i, p in enumerate([10.0, 20.0])
    ] + [records.feedback(request_id="r0", model_name="price", model_version="1", payload={"value": 12}),
         records.feedback(request_id="r1", model_name="price", model_version="1", payload={"value": 19})])  # fmt: skip

    [score] = feedback_store.quality(3600, now=now + 1)

    assert score.accuracy is None
    assert score.mean_absolute_error == pytest.approx(1.5)


def test_bad_records_are_counted_and_skipped(feedback_store: FeedbackStore) -> None:
    counts = feedback_store.ingest([{"tag": "nonsense", "request_id": "x"}, {"tag": "feedback", "request_id": ""},
                                    {"tag": "feedback", "request_id": "y" * 500, "payload": {}}])  # fmt: skip

    assert counts == {("unknown", "unknown", "invalid"): 3}
    assert feedback_store.counts() == (0, 0)


def test_recent_predictions_come_with_their_feedback(feedback_store: FeedbackStore) -> None:
    now = time.time()
    feedback_store.ingest(prediction("a", high=True, at=now - 2) + prediction("b", high=False, at=now - 1)
                          + [truth("a", ">50K")])  # fmt: skip

    newest, oldest = feedback_store.predictions("census", limit=10)

    assert (newest.request_id, newest.feedback, newest.status) == ("b", None, 200)
    assert (oldest.request_id, oldest.feedback) == ("a", {"income": ">50K"})
    assert oldest.inputs == {"columns": ["age"], "data": [[40]]}
    assert feedback_store.predictions("other", limit=10) == []


def test_prune_forgets_what_is_older_than_the_retention(engine: Engine) -> None:
    store = FeedbackStore(engine, retention_s=3600)
    now = time.time()
    store.ingest(prediction("new", high=True, at=now))
    store.ingest([*prediction("old", high=True, at=now - 7200), truth("old", ">50K")])

    assert store.prune(now) == 2
    assert [p.request_id for p in store.predictions(None, 10)] == ["new"]
    assert store.counts() == (1, 0)

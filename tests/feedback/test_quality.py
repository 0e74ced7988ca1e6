"""Scoring a logged prediction against its ground truth, for every response shape the model server answers."""

from __future__ import annotations

from typing import Any

import pytest

from legion.feedback.quality import Comparison, compare

CENSUS = {"prediction": [[0.9, 0.1], [0.3, 0.7]], "columns": ["<=50K", ">50K"]}


@pytest.mark.parametrize(
    ("prediction", "truth", "expected"),
    [
        # a classifier answering class probabilities: the most probable column is the predicted label
        (CENSUS, {"income": ["<=50K", ">50K"]}, Comparison("classification", 2, correct=2)),
        (CENSUS, {"label": ["<=50K", "<=50K"]}, Comparison("classification", 2, correct=1)),
        (CENSUS, {"label": ">50K"}, Comparison("classification", 1, correct=0)),  # a scalar is the first row's
        # naming an output column scores that column's value itself
        (CENSUS, {">50K": [0.0, 1.0]}, Comparison("regression", 2, abs_error=pytest.approx(0.4))),
        # one output column of labels, numbers or floats
        ({"prediction": [["cat"]], "columns": ["animal"]}, {"animal": "cat"}, Comparison("classification", 1, 1)),
        ({"prediction": [[9]], "columns": ["digit"]}, {"truth": "9"}, Comparison("classification", 1, 1)),
        ({"prediction": [[2.5]], "columns": ["price"]}, {"y": 3}, Comparison("regression", 1, abs_error=0.5)),
        # v2 endpoints: one value
        ({"prediction": True}, {"target": True}, Comparison("classification", 1, 1)),
        # Open Inference Protocol V2
        ({"outputs": [{"name": "y", "data": [1.0, 2.0]}]}, {"y": [2, 2]}, Comparison("regression", 2, abs_error=1.0)),
        (
            {"outputs": [{"name": "label", "data": ["a", "b"]}]},
            {"label": ["a", "a"]},
            Comparison("classification", 2, 1),
        ),
        # MLflow: values, or one object per row
        ({"predictions": [0, 1, 1]}, {"value": [0, 1, 0]}, Comparison("classification", 3, 2)),
        ({"predictions": [{"p": 0.5, "label": "x"}]}, {"label": "x"}, Comparison("classification", 1, 1)),
        # the only key is the truth, whatever its name
        ({"prediction": [["no"]], "columns": ["c"]}, {"ground": "yes"}, Comparison("classification", 1, 0)),
        # more truths than rows: only the rows are scored
        ({"prediction": [["a"]], "columns": ["c"]}, {"label": ["a", "b"]}, Comparison("classification", 1, 1)),
    ],
)
def test_a_prediction_is_scored_against_its_truth(prediction: Any, truth: Any, expected: Comparison) -> None:
    assert compare(prediction, truth) == expected


@pytest.mark.parametrize(
    ("prediction", "truth"),
    [
        ({"error": "column age is missing"}, {"label": 1}),  # the model refused the request
        ("not json", {"label": 1}),
        (CENSUS, {}),  # no truth
        (CENSUS, {"a": 1, "b": 2}),  # several keys, none of them a column or a truth name
        (CENSUS, ["<=50K"]),  # truth must be an object
        ({"prediction": []}, {"label": 1}),  # no rows
        ({"outputs": []}, {"label": 1}),
        (CENSUS, {"label": None}),
    ],
)
def test_what_cannot_be_compared_scores_nothing(prediction: Any, truth: Any) -> None:
    assert compare(prediction, truth) is None

"""``compare(prediction, truth)``: how far a logged prediction is from the ground truth sent back for it.

The feedback store calls this once both halves of a request id are known. A prediction is the response body a
model API answered, in any of the protocols the server speaks:

- Legion v1: ``{"prediction": [[...], ...], "columns": [...]}``; v2 endpoints ``{"prediction": <value>}``;
- Open Inference Protocol V2: ``{"outputs": [{"name": ..., "data": [...]}, ...]}``;
- MLflow: ``{"predictions": [...]}`` (values, or one object per row).

Ground truth is a JSON object. Its value is taken from, in order: a key named after an output column, then
``label``, ``truth``, ``target``, ``y`` or ``value``, then the only key there is. A scalar is the truth for the
first row; a list is one truth per row.

What each row's predicted value is: the named column when the truth names one; else, when every output is a
number in [0, 1] and there are several (a classifier's class probabilities, as the census example answers), the
name of the most probable column; else the first column. Then a float prediction with a numeric truth is a
regression (absolute error), anything else a classification (equal or not, compared as text when the types
differ, so ``1`` and ``"1"`` agree).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

TRUTH_KEYS: Final = ("label", "truth", "target", "y", "value")


@dataclass(frozen=True, slots=True)
class Comparison:
    """What one prediction scored: ``compared`` rows, of which ``correct`` (classification), and the sum of the
    absolute errors (regression)."""

    kind: Literal["classification", "regression"]
    compared: int
    correct: int = 0
    abs_error: float = 0.0


def compare(prediction: Any, truth: Any) -> Comparison | None:
    """Score ``prediction`` (a response body) against ``truth`` (a feedback body); ``None`` when they cannot be
    compared (an error body, no usable truth, no rows)."""
    table = _table(prediction)
    if table is None or not isinstance(truth, dict) or not truth:
        return None
    columns, rows = table
    named, expected = _truth(truth, columns)
    if expected is _MISSING:
        return None
    truths = expected if isinstance(expected, list) else [expected]
    predicted = [_predicted(row, columns, named) for row in rows[: len(truths)]]
    pairs = [(p, t) for p, t in zip(predicted, truths, strict=False) if p is not _MISSING and t is not None]
    if not pairs:
        return None
    if all(_is_float(p) and _is_number(t) for p, t in pairs):
        return Comparison("regression", len(pairs), abs_error=sum(abs(float(p) - float(t)) for p, t in pairs))
    return Comparison("classification", len(pairs), correct=sum(_same(p, t) for p, t in pairs))


_MISSING: Final[Any] = object()


def _table(body: Any) -> tuple[list[str], list[list[Any]]] | None:  # noqa: PLR0911  # one return per protocol shape
    """Output columns and rows of a response body, or ``None`` when it is not a prediction."""
    if not isinstance(body, dict):
        return None
    if "prediction" in body:
        rows, columns = body["prediction"], body.get("columns")
        if isinstance(rows, list) and all(isinstance(r, list) for r in rows):
            names = [str(c) for c in columns] if isinstance(columns, list) else []
            return names, rows
        if isinstance(rows, list):
            return [], [[value] for value in rows]
        return [], [[rows]]
    if isinstance(body.get("outputs"), list):
        outputs = [o for o in body["outputs"] if isinstance(o, dict) and isinstance(o.get("data"), list)]
        if not outputs:
            return None
        names = [str(o.get("name", i)) for i, o in enumerate(outputs)]
        length = min(len(o["data"]) for o in outputs)
        return names, [[o["data"][i] for o in outputs] for i in range(length)]
    if isinstance(body.get("predictions"), list):
        values = body["predictions"]
        if values and all(isinstance(v, dict) for v in values):
            names = list(values[0])
            return names, [[v.get(n) for n in names] for v in values]
        return [], [v if isinstance(v, list) else [v] for v in values]
    return None


def _truth(truth: dict[str, Any], columns: Sequence[str]) -> tuple[str | None, Any]:
    for key, value in truth.items():
        if key in columns:
            return key, value
    for key in TRUTH_KEYS:
        if key in truth:
            return None, truth[key]
    if len(truth) == 1:
        return None, next(iter(truth.values()))
    return None, _MISSING


def _predicted(row: list[Any], columns: Sequence[str], named: str | None) -> Any:
    if not row:
        return _MISSING
    if named is not None:
        return row[columns.index(named)] if columns.index(named) < len(row) else _MISSING
    if len(row) > 1 and len(columns) == len(row) and all(_is_number(v) and 0.0 <= v <= 1.0 for v in row):
        return columns[max(range(len(row)), key=row.__getitem__)]
    return row[0]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_float(value: Any) -> bool:
    return isinstance(value, float)


def _same(predicted: Any, truth: Any) -> bool:
    if type(predicted) is type(truth) or (_is_number(predicted) and _is_number(truth)):
        return bool(predicted == truth)
    return str(predicted).lower() == str(truth).lower()

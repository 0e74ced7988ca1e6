"""``Table``: named, typed columns of equal length: what flows into and out of a model endpoint.

Request decoders build a ``Table`` per request; the batcher concatenates the tables of concurrent requests,
calls the model once and slices the answer back. Column arrays (not rows) are kept because concatenating,
slicing and building a DataFrame from them is cheap, and because NumPy does the type checks in bulk.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd

Layout = Literal["frame", "vector", "matrix"]
"""What a model's answer was before it became a table: named columns (a DataFrame, a mapping, a Series), a
one-dimensional array or a two-dimensional one. MLflow's scoring protocol renders each differently."""


@dataclass(frozen=True, slots=True)
class Table:
    """Columns of equal length; ``rows`` and ``records`` render it for the wire."""

    columns: tuple[str, ...]
    arrays: tuple[np.ndarray, ...]
    layout: Layout = "frame"

    def __len__(self) -> int:
        return len(self.arrays[0]) if self.arrays else 0

    @classmethod
    def concat(cls, tables: Sequence[Table]) -> Table:
        if len(tables) == 1:
            return tables[0]
        first = tables[0]
        arrays = tuple(np.concatenate([t.arrays[i] for t in tables]) for i in range(len(first.columns)))
        return cls(first.columns, arrays, first.layout)

    def slice(self, start: int, stop: int) -> Table:
        return Table(self.columns, tuple(a[start:stop] for a in self.arrays), self.layout)

    def to_frame(self) -> pd.DataFrame:
        return pd.DataFrame(dict(zip(self.columns, self.arrays, strict=True)), copy=False)

    def column_lists(self) -> list[list[Any]]:
        return [_as_list(a) for a in self.arrays]

    def rows(self) -> list[list[Any]]:
        return [list(row) for row in zip(*self.column_lists(), strict=True)]

    def records(self) -> list[dict[str, Any]]:
        return [dict(zip(self.columns, row, strict=True)) for row in zip(*self.column_lists(), strict=True)]

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> Table:
        return cls(tuple(str(c) for c in frame.columns), tuple(frame[c].to_numpy() for c in frame.columns))


def _as_list(array: np.ndarray) -> list[Any]:
    """Plain Python values for JSON: NaN becomes None, bytes become text, NumPy scalars become Python ones."""
    values: list[Any] = array.tolist()
    if array.dtype.kind == "f" and np.isnan(array).any():
        return [None if math.isnan(v) else v for v in values]
    if array.dtype.kind == "O":
        return [_plain(v) for v in values]
    return values


def _plain(value: object) -> object:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, float) and math.isnan(value):
        return None
    return value

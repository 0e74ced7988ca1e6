"""A loaded model's endpoints: the objects the server calls.

``TypedEndpoint`` takes a ``Table`` whose columns match its signature, calls the model once and returns a
``Table`` with one output row per input row, so the batcher can merge requests and split answers. When the
model's output cannot be split that way (a legacy ``apply_func`` that returns one dict for any input), the
answer is ``Raw`` and the batcher calls the model again per request. ``UntypedEndpoint`` passes the request's
mapping through as it is and returns whatever JSON the model gives.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from legion.core.errors import LegionError, ModelError
from legion.model.manifest import ColumnSpec, EndpointSpec
from legion.model.table import Table

Function = Callable[[Any], Any]


@dataclass(frozen=True, slots=True)
class Raw:
    """A model answer that is not one row per input row; returned to a lone caller as it is."""

    value: Any


def _model_failed(endpoint: str, exc: BaseException) -> ModelError:
    return ModelError(f"the model raised while predicting (endpoint {endpoint!r}): {type(exc).__name__}: {exc}")


def _from_mapping(result: Mapping[Any, Any], rows: int) -> Table | Raw:
    values = list(result.values())
    if values and all(np.ndim(v) == 0 for v in values):
        if rows != 1:
            return Raw(dict(result))
        return Table(tuple(str(k) for k in result), tuple(np.array([v]) for v in values))
    try:
        return Table(tuple(str(k) for k in result), tuple(np.asarray(v) for v in values))
    except ValueError:
        return Raw(dict(result))


def _from_array(result: Any, rows: int, names: Sequence[str]) -> Table | Raw:
    try:
        array = np.asarray(result)
    except ValueError:
        return Raw(result)
    if array.ndim == 1:
        return Table((_name(names, 0),), (array,), "vector")
    if array.ndim == 2:
        width = array.shape[1]
        labels = tuple(_name(names, i) if len(names) == width else str(i) for i in range(width))
        return Table(labels, tuple(array[:, i] for i in range(width)), "matrix")
    if array.ndim == 0 and rows == 1:
        return Table((_name(names, 0),), (array.reshape(1),), "vector")
    return Raw(result.tolist() if isinstance(result, np.ndarray) else result)


def to_table(result: Any, rows: int, names: Sequence[str] = ()) -> Table | Raw:
    """Normalise what a model returned into ``rows`` output rows, or ``Raw`` when it is not row-aligned."""
    table: Table | Raw
    if isinstance(result, pd.DataFrame):
        table = Table.from_frame(result)
    elif isinstance(result, pd.Series):
        table = Table((str(result.name) if result.name is not None else _name(names, 0),), (result.to_numpy(),))
    elif isinstance(result, Mapping):
        table = _from_mapping(result, rows)
    else:
        table = _from_array(result, rows, names)
    if isinstance(table, Raw):
        return table
    lengths = {len(a) for a in table.arrays}
    if lengths != {rows}:
        return Raw(table.records() if len(lengths) == 1 else result)
    return table


def _name(names: Sequence[str], index: int) -> str:
    return names[index] if index < len(names) else "prediction"


class TypedEndpoint:
    """An endpoint with a column signature; the server hands it validated, merged tables."""

    batchable = True

    def __init__(self, name: str, spec: EndpointSpec, call: Function, prepare: Function | None = None) -> None:
        self.name = name
        self.spec = spec
        self.columns: tuple[ColumnSpec, ...] = tuple(spec.columns or ())
        self.output_names: tuple[str, ...] = tuple(c.name for c in spec.output or ())
        self._call = call
        self._prepare = prepare

    def model_input(self, table: Table) -> Any:
        """What the model is called with: a DataFrame of the table."""
        return table.to_frame()

    def predict(self, table: Table) -> Table | Raw:
        frame = self.model_input(table)
        try:
            prepared = self._prepare(frame) if self._prepare is not None else frame
            result = self._call(prepared)
        except LegionError:
            raise
        except Exception as exc:
            raise _model_failed(self.name, exc) from exc
        return to_table(result, len(table), self.output_names)


class UntypedEndpoint:
    """An endpoint without a signature: the model gets the request's mapping and answers any JSON."""

    batchable = False
    columns: tuple[ColumnSpec, ...] = ()
    output_names: tuple[str, ...] = ()

    def __init__(self, name: str, spec: EndpointSpec, call: Function, prepare: Function | None = None) -> None:
        self.name = name
        self.spec = spec
        self._call = call
        self._prepare = prepare

    def call(self, payload: Mapping[str, Any]) -> Any:
        try:
            prepared = self._prepare(payload) if self._prepare is not None else payload
            return self._call(prepared)
        except LegionError:
            raise
        except Exception as exc:
            raise _model_failed(self.name, exc) from exc


Endpoint = TypedEndpoint | UntypedEndpoint


def accepts_argument(method: Callable[..., Any]) -> bool:
    """Whether ``load`` of a class-flavored model wants the artifacts mapping."""
    try:
        return len(inspect.signature(method).parameters) >= 1
    except (TypeError, ValueError):
        return False

"""Wire values -> validated ``Table`` for a typed endpoint, and ``Table`` -> JSON-ready values.

Every protocol reduces its body to one of three shapes: rows with a column list (Legion era-b, MLflow
``dataframe_split``), records (MLflow ``dataframe_records``, era-a batches, query strings) or a mapping of
columns (OIP V2 inputs, MLflow ``inputs``). Each shape is checked against the endpoint's signature here, once:
missing and unknown columns are reported together, then each column is converted by ``decode_column`` which
names the bad row and value. An endpoint without a signature (an MLflow model saved without one) takes the
columns it is given, typed from their values.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from legion.core.dtypes import decode_column
from legion.core.errors import BadRequestError, InvalidInputError
from legion.model.manifest import ColumnSpec
from legion.model.table import Table

_MISSING = object()


class Signed(Protocol):
    """What the decoders need of an endpoint: its name and columns (empty: take any columns)."""

    @property
    def name(self) -> str: ...
    @property
    def columns(self) -> tuple[ColumnSpec, ...]: ...


class _AnyColumns:
    name = "untyped"
    columns: tuple[ColumnSpec, ...] = ()


ANY_COLUMNS: Signed = _AnyColumns()
"""For untyped endpoints: decode whatever columns come, typed from their values."""


def _check_names(endpoint: Signed, given: Sequence[str]) -> None:
    expected = [c.name for c in endpoint.columns]
    given_set = set(given)
    problems = {name: "missing column" for name in expected if name not in given_set}
    expected_set = set(expected)
    problems.update({name: "unknown column" for name in given if name not in expected_set})
    if len(given_set) != len(given):
        duplicates = sorted({n for n in given if list(given).count(n) > 1})
        problems.update(dict.fromkeys(duplicates, "column given twice"))
    if problems:
        raise InvalidInputError.for_fields(problems, prefix=f"columns do not match endpoint {endpoint.name!r}")


def _decode_all(specs: Sequence[ColumnSpec], columns: Mapping[str, Sequence[object]]) -> Table:
    """Convert every column, collecting all bad fields into one error."""
    arrays: list[np.ndarray] = []
    problems: dict[str, str] = {}
    for spec in specs:
        try:
            arrays.append(decode_column(spec.name, spec.type, columns[spec.name], nullable=spec.nullable))
        except InvalidInputError as exc:
            problems.update(exc.fields)
    if problems:
        raise InvalidInputError.for_fields(problems)
    return Table(tuple(s.name for s in specs), tuple(arrays))


def _free(columns: Mapping[str, Sequence[object]]) -> Table:
    arrays = []
    for name, values in columns.items():
        array = np.asarray(values)
        if array.ndim != 1:
            raise InvalidInputError.for_fields({name: "values must be scalars"})
        arrays.append(array if array.dtype.kind in "biuf" else np.asarray(values, dtype=object))
    return Table(tuple(columns), tuple(arrays))


def from_rows(endpoint: Signed, columns: object, rows: object) -> Table:
    """``{"columns": [...], "data": [[...], ...]}``."""
    if not isinstance(columns, list) or not all(isinstance(c, str) for c in columns):
        raise BadRequestError("'columns' must be a list of column names")
    if not isinstance(rows, list) or not rows:
        raise BadRequestError("'data' must be a non-empty list of rows")
    width = len(columns)
    for index, row in enumerate(rows):
        if not isinstance(row, list) or len(row) != width:
            raise BadRequestError(f"row {index} must be a list of {width} values, one per column")
    values = dict(zip(columns, (list(col) for col in zip(*rows, strict=True)), strict=True))
    if not endpoint.columns:
        return _free(values)
    _check_names(endpoint, columns)
    return _decode_all(endpoint.columns, values)


def from_matrix(rows: object) -> Table:
    """``[[1, 0.5], [4, 3.5]]`` for an endpoint without a signature: unnamed columns ``0..n-1``, handed to the
    model as a 2-D array (what MLflow's scoring server does with ``instances`` or ``inputs`` of lists)."""
    if not isinstance(rows, list) or not rows or not all(isinstance(r, list) for r in rows):
        raise BadRequestError("expected a non-empty list of rows (lists)")
    width = len(rows[0])
    if width == 0 or any(len(r) != width for r in rows):
        raise BadRequestError(f"every row must hold the same number of values as the first ({width})")
    table = _free({str(i): [r[i] for r in rows] for i in range(width)})
    return Table(table.columns, table.arrays, "matrix")


def from_records(endpoint: Signed, records: object) -> Table:
    """``[{"age": 39, ...}, ...]``."""
    if not isinstance(records, list) or not records:
        raise BadRequestError("expected a non-empty list of records (objects)")
    if not all(isinstance(r, dict) for r in records):
        raise BadRequestError("every record must be a JSON object")
    names = list(records[0]) if not endpoint.columns else [c.name for c in endpoint.columns]
    seen: dict[str, None] = {}
    for record in records:
        seen.update(dict.fromkeys(record))
    if endpoint.columns:
        _check_names(endpoint, list(seen))
    columns: dict[str, list[object]] = {}
    for name in names:
        column = [r.get(name, _MISSING) for r in records]
        if _MISSING in column:
            row = column.index(_MISSING)
            raise InvalidInputError.for_fields({name: f"missing in record {row}"})
        columns[name] = column
    if not endpoint.columns:
        return _free(columns)
    return _decode_all(endpoint.columns, columns)


def from_columns(endpoint: Signed, mapping: Mapping[str, object]) -> Table:
    """``{"age": [39, 50], ...}``; scalars count as one row."""
    if not mapping:
        raise BadRequestError("no input columns given")
    columns: dict[str, list[object]] = {}
    for name, value in mapping.items():
        columns[name] = list(value) if isinstance(value, list | tuple) else [value]
    lengths = {len(v) for v in columns.values()}
    if len(lengths) != 1:
        raise BadRequestError(
            "columns have different lengths: " + ", ".join(f"{k}={len(v)}" for k, v in columns.items())
        )
    if 0 in lengths:
        raise BadRequestError("columns are empty")
    if not endpoint.columns:
        return _free(columns)
    _check_names(endpoint, list(columns))
    return _decode_all(endpoint.columns, columns)


def table_output(table: Table) -> tuple[list[str], list[list[Any]]]:
    """``(columns, rows)`` of a result table for JSON."""
    return list(table.columns), table.rows()

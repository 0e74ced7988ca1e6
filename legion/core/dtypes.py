"""Column types of a model signature, and the conversion of wire values into typed columns.

The model APIs receive values as JSON numbers and strings, query-string text, form fields or uploaded files.
``decode_column`` turns one column of such values into a NumPy array of the declared type, or raises
``InvalidInputError`` naming the column, the row and the offending value. It is on every request's path, so it
takes a fast path (one ``type()`` check per value, then one NumPy conversion) and only walks the values one by
one to explain a failure.

``image`` columns hold the encoded image bytes (PNG, JPEG, ...): from a multipart upload, a
``data:image/...;base64,`` URI or plain base64. A URL is refused: the server never fetches from the network.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Callable, Sequence
from typing import Any, Final, Literal

import numpy as np

from legion.core.errors import InvalidInputError

ColumnType = Literal[
    "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float32", "float64", "string", "boolean", "image",
]  # fmt: skip

INTEGER_TYPES: Final = ("int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64")
FLOAT_TYPES: Final = ("float32", "float64")
COLUMN_TYPES: Final[tuple[str, ...]] = (*INTEGER_TYPES, *FLOAT_TYPES, "string", "boolean", "image")

# Open Inference Protocol V2 datatype of each column type.
V2_DATATYPES: Final[dict[str, str]] = {
    **{t: t.upper() for t in INTEGER_TYPES},
    "float32": "FP32",
    "float64": "FP64",
    "string": "BYTES",
    "boolean": "BOOL",
    "image": "BYTES",
}

_TRUE: Final = frozenset({"true", "1", "yes", "y", "t", "on"})
_FALSE: Final = frozenset({"false", "0", "no", "n", "f", "off"})
_NULL_TEXT: Final = frozenset({"nan", "NaN", "NAN", "null", "None", ""})
_MAX_SHOWN: Final = 40


class ColumnError(Exception):
    """Internal: one bad value; the caller adds the column name and turns it into ``InvalidInputError``."""

    def __init__(self, row: int, why: str) -> None:
        super().__init__(why)
        self.row = row
        self.why = why


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."


def _int_value(row: int, value: object, info: np.iinfo[Any]) -> int:
    if type(value) is int:
        number = value
    elif type(value) is float:
        if not value.is_integer():
            raise ColumnError(row, f"{_shown(value)} is not an integer")
        number = int(value)
    elif isinstance(value, str):
        try:
            number = int(value.strip())
        except ValueError:
            try:
                as_float = float(value)
            except ValueError:
                raise ColumnError(row, f"{_shown(value)} is not an integer") from None
            if not as_float.is_integer():
                raise ColumnError(row, f"{_shown(value)} is not an integer") from None
            number = int(as_float)
    elif value is None:
        raise ColumnError(row, "null is not allowed (the column is an integer)")
    else:
        raise ColumnError(row, f"{_shown(value)} is not an integer")
    if not info.min <= number <= info.max:
        raise ColumnError(row, f"{number} is out of range [{info.min}, {info.max}]")
    return number


def _float_value(row: int, value: object, nullable: bool) -> float:
    if type(value) is float or type(value) is int:
        number = float(value)
    elif isinstance(value, str):
        text = value.strip()
        if text in _NULL_TEXT:
            number = math.nan
        else:
            try:
                number = float(text)
            except ValueError:
                raise ColumnError(row, f"{_shown(value)} is not a number") from None
    elif value is None:
        number = math.nan
    else:
        raise ColumnError(row, f"{_shown(value)} is not a number")
    if math.isnan(number) and not nullable:
        raise ColumnError(row, "NaN (or null) is not allowed in this column")
    if math.isinf(number):
        raise ColumnError(row, f"{_shown(value)} is not a finite number")
    return number


def _bool_value(row: int, value: object) -> bool:
    if type(value) is bool:
        return value
    if type(value) is int and value in (0, 1):
        return bool(value)
    if isinstance(value, str):
        text = value.strip().lower()
        if text in _TRUE:
            return True
        if text in _FALSE:
            return False
    raise ColumnError(row, f"{_shown(value)} is not a boolean")


def _string_value(row: int, value: object, nullable: bool) -> object:
    if isinstance(value, str):
        return value
    if value is None and nullable:
        return None
    if value is None:
        raise ColumnError(row, "null is not allowed (the column is a string)")
    raise ColumnError(row, f"{_shown(value)} is not a string")


def decode_image(value: object, row: int = 0) -> bytes:
    """Bytes of an image given as bytes, a ``data:`` URI or base64 text; URLs are refused."""
    if isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith(("http://", "https://", "ftp://", "file:")):
            raise ColumnError(row, "image URLs are not fetched; send the image bytes or a data: URI")
        if text.startswith("data:"):
            header, _, text = text.partition(",")
            if ";base64" not in header:
                raise ColumnError(row, "a data: URI for an image must be base64-encoded")
        try:
            data = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise ColumnError(row, "image is neither bytes, a data: URI nor valid base64") from None
    else:
        raise ColumnError(row, f"{_shown(value)} is not an image (send bytes, a data: URI or base64)")
    if not data:
        raise ColumnError(row, "image is empty")
    return data


def decode_column(name: str, column_type: str, values: Sequence[object], *, nullable: bool = False) -> np.ndarray:
    """Convert one column of wire values to a NumPy array of ``column_type``.

    >>> decode_column("age", "int64", [39, "40"]).tolist()
    [39, 40]
    """
    try:
        return _decode(column_type, values, nullable)
    except ColumnError as exc:
        where = f" (row {exc.row})" if len(values) > 1 else ""
        raise InvalidInputError.for_fields({name: exc.why + where}) from None


def _decode_int(column_type: str, values: Sequence[object], nullable: bool) -> np.ndarray:
    dtype = np.dtype(column_type)
    if all(type(v) is int for v in values):
        try:
            return np.array(values, dtype=dtype)
        except OverflowError:
            pass  # fall through to name the value out of range
    info = np.iinfo(dtype)
    return np.array([_int_value(r, v, info) for r, v in enumerate(values)], dtype=dtype)


def _decode_float(column_type: str, values: Sequence[object], nullable: bool) -> np.ndarray:
    dtype = np.dtype(column_type)
    if all(type(v) is float or type(v) is int for v in values):
        array = np.array(values, dtype=dtype)
        if (nullable or not np.isnan(array).any()) and not np.isinf(array).any():
            return array
    return np.array([_float_value(r, v, nullable) for r, v in enumerate(values)], dtype=dtype)


def _decode_string(column_type: str, values: Sequence[object], nullable: bool) -> np.ndarray:
    if all(type(v) is str for v in values):
        return np.array(values, dtype=object)
    return np.array([_string_value(r, v, nullable) for r, v in enumerate(values)], dtype=object)


def _decode_bool(column_type: str, values: Sequence[object], nullable: bool) -> np.ndarray:
    if all(type(v) is bool for v in values):
        return np.array(values, dtype=bool)
    return np.array([_bool_value(r, v) for r, v in enumerate(values)], dtype=bool)


def _decode_image(column_type: str, values: Sequence[object], nullable: bool) -> np.ndarray:
    array = np.empty(len(values), dtype=object)
    array[:] = [decode_image(v, r) for r, v in enumerate(values)]
    return array


_DECODERS: Final[dict[str, Callable[[str, Sequence[object], bool], np.ndarray]]] = {
    **dict.fromkeys(INTEGER_TYPES, _decode_int),
    **dict.fromkeys(FLOAT_TYPES, _decode_float),
    "string": _decode_string,
    "boolean": _decode_bool,
    "image": _decode_image,
}


def _decode(column_type: str, values: Sequence[object], nullable: bool) -> np.ndarray:
    return _DECODERS[column_type](column_type, values, nullable)


def column_type_of(dtype: Any, sample: Sequence[object] = ()) -> str:
    """The Legion column type for a pandas/NumPy dtype (``object`` columns are told apart by their values)."""
    numpy_dtype = _numpy_dtype(dtype)
    kind = numpy_dtype.kind if numpy_dtype is not None else ""
    if kind == "b":
        return "boolean"
    if kind in ("i", "u"):
        return str(numpy_dtype)
    if kind == "f":
        return "float32" if numpy_dtype is not None and numpy_dtype.itemsize == 4 else "float64"
    if any(isinstance(v, bytes | bytearray) for v in sample):
        return "image"
    return "string"


def _numpy_dtype(dtype: Any) -> np.dtype[Any] | None:
    """``dtype`` as a NumPy dtype; None for pandas extension dtypes (strings, categories), which NumPy refuses."""
    try:
        converted: np.dtype[Any] = np.dtype(dtype)
    except TypeError:
        return None
    return converted

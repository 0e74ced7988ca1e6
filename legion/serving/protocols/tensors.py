"""OIP V2 tensors on the wire: datatypes checked against the data, and the binary tensor data extension.

``decode_inputs`` turns a request's ``inputs`` (plus the bytes after its JSON header, for inputs sent as binary
data) into flat ``Tensor`` values, refusing with 400 an input whose values do not fit its ``datatype``, whose
``shape`` does not hold its values or whose binary part is short, as KServe and MLServer do. ``encode_outputs``
renders output tensors as JSON ``data`` or, for the outputs a client asked to get as binary data, as bytes after
the JSON header. Called by ``serving.protocols.v2``; kept apart because it knows nothing of HTTP or models.

The binary extension (Triton's, also KServe's): the body is a JSON header of ``Inference-Header-Content-Length``
bytes followed by the raw tensors, in input order, each named by ``"parameters": {"binary_data_size": n}``.
Numbers are little-endian in row-major order, BOOL one byte each, BYTES each element a 4-byte little-endian
length followed by its bytes. A client asks for binary outputs with ``"parameters": {"binary_data_output": true}``
on the request or ``{"binary_data": true}`` on a requested output.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from legion.core.errors import BadRequestError

# Datatype -> NumPy dtype on the wire (little-endian); BYTES has none (length-prefixed elements).
DTYPES: dict[str, np.dtype[Any] | None] = {
    "BOOL": np.dtype("?"),
    **{f"INT{bits}": np.dtype(f"<i{bits // 8}") for bits in (8, 16, 32, 64)},
    **{f"UINT{bits}": np.dtype(f"<u{bits // 8}") for bits in (8, 16, 32, 64)},
    "FP16": np.dtype("<f2"),
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "BYTES": None,
}
_LENGTH = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class Tensor:
    """One named tensor, its values flat in row-major order (BYTES sent as binary data are ``bytes``)."""

    name: str
    datatype: str
    shape: tuple[int, ...]
    values: list[Any]


def split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """``(json header, binary data)`` of a request; without ``Inference-Header-Content-Length`` all is JSON."""
    if header_length is None:
        return body, b""
    if not header_length.strip().isdigit() or int(header_length) > len(body):
        raise BadRequestError(
            f"Inference-Header-Content-Length must be a byte count within the body of {len(body)} bytes; "
            f"got {header_length!r}"
        )
    cut = int(header_length)
    return body[:cut], body[cut:]


def decode_inputs(inputs: object, binary: bytes) -> list[Tensor]:
    """Check and decode every input tensor; the binary parts are taken from ``binary`` in input order."""
    if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) for i in inputs):
        raise BadRequestError('"inputs" must be a non-empty list of tensors {name, shape, datatype, data}')
    tensors = []
    offset = 0
    for index, tensor in enumerate(inputs):
        name = tensor.get("name")
        if not isinstance(name, str):
            raise BadRequestError(f"input {index} needs a name")
        datatype = tensor.get("datatype")
        if datatype not in DTYPES:
            known = ", ".join(DTYPES)
            raise BadRequestError(f"input {name!r}: datatype {datatype!r} is not one of {known}")
        parameters = tensor.get("parameters") or {}
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is not None:
            if "data" in tensor:
                raise BadRequestError(f"input {name!r} has both data and binary_data_size")
            if type(size) is not int or size < 0 or offset + size > len(binary):
                raise BadRequestError(
                    f"input {name!r}: binary_data_size {size!r} does not fit the {len(binary) - offset} bytes left"
                )
            values = _from_binary(name, datatype, binary[offset : offset + size])
            offset += size
        elif "data" in tensor:
            values = _flatten(tensor["data"])
            _check_json(name, datatype, values)
        else:
            raise BadRequestError(f"input {name!r} needs data (or binary_data_size)")
        tensors.append(Tensor(name, datatype, _shape(name, tensor.get("shape"), len(values)), values))
    if offset != len(binary):
        raise BadRequestError(f"the request has {len(binary) - offset} bytes of binary data that no input claims")
    return tensors


def _shape(name: str, shape: object, count: int) -> tuple[int, ...]:
    if shape is None:
        return (count,)
    if not isinstance(shape, list) or not all(type(s) is int and s >= 0 for s in shape):
        raise BadRequestError(f"input {name!r}: shape must be a list of non-negative integers")
    if math.prod(shape) != count:
        raise BadRequestError(f"input {name!r}: shape {shape} does not hold {count} values")
    return tuple(shape)


def _flatten(data: object) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        return [value for part in data for value in _flatten(part)]
    return data


def _check_json(name: str, datatype: str, values: Sequence[object]) -> None:
    """Refuse values that do not fit ``datatype``; JSON null is taken as missing in FP and BYTES tensors."""
    dtype = DTYPES[datatype]
    if datatype == "BOOL":
        bad = [v for v in values if type(v) is not bool]
    elif datatype == "BYTES":
        bad = [v for v in values if v is not None and not isinstance(v, str)]
    elif dtype is not None and dtype.kind in "iu":
        bad = [v for v in values if type(v) is not int]
        if not bad and values:
            info = np.iinfo(dtype)
            out = [v for v in values if not info.min <= v <= info.max]  # type: ignore[operator]  # ints, checked
            if out:
                raise BadRequestError(f"input {name!r}: {out[0]} is out of range for {datatype}")
    else:
        bad = [v for v in values if v is not None and type(v) not in (int, float)]
    if bad:
        raise BadRequestError(f"input {name!r}: {_shown(bad[0])} does not match its datatype {datatype}")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _from_binary(name: str, datatype: str, raw: bytes) -> list[Any]:
    dtype = DTYPES[datatype]
    if dtype is None:
        return _bytes_elements(name, raw)
    if len(raw) % dtype.itemsize:
        raise BadRequestError(f"input {name!r}: {len(raw)} bytes is not a whole number of {datatype} values")
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return values


def _bytes_elements(name: str, raw: bytes) -> list[bytes]:
    elements = []
    offset = 0
    while offset < len(raw):
        if offset + 4 > len(raw):
            raise BadRequestError(f"input {name!r}: BYTES data ends inside an element's length")
        (length,) = _LENGTH.unpack_from(raw, offset)
        offset += 4
        if offset + length > len(raw):
            raise BadRequestError(f"input {name!r}: a BYTES element of {length} bytes runs past the data")
        elements.append(raw[offset : offset + length])
        offset += length
    return elements


def binary_outputs(body: Mapping[str, Any]) -> tuple[frozenset[str] | None, frozenset[str], bool]:
    """``(requested output names or None for all, outputs wanted as binary, all outputs binary)``."""
    parameters = body.get("parameters")
    everything = isinstance(parameters, dict) and parameters.get("binary_data_output") is True
    requested = body.get("outputs")
    if requested is None:
        return None, frozenset(), everything
    if not isinstance(requested, list) or not all(
        isinstance(o, dict) and isinstance(o.get("name"), str) for o in requested
    ):
        raise BadRequestError('"outputs" must be a list of objects with a name')
    binary = frozenset(
        o["name"] for o in requested if isinstance(o.get("parameters"), dict) and o["parameters"].get("binary_data")
    )
    return frozenset(o["name"] for o in requested), binary, everything


def encode_outputs(
    outputs: list[Tensor], binary: frozenset[str], everything: bool
) -> tuple[list[dict[str, Any]], bytes]:
    """JSON descriptions of ``outputs`` and the bytes that follow the header for those sent as binary data."""
    described = []
    parts = []
    for tensor in outputs:
        entry: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": list(tensor.shape)}
        if everything or tensor.name in binary:
            raw = _to_binary(tensor)
            entry["parameters"] = {"binary_data_size": len(raw)}
            parts.append(raw)
        else:
            entry["data"] = tensor.values
        described.append(entry)
    return described, b"".join(parts)


def _to_binary(tensor: Tensor) -> bytes:
    dtype = DTYPES[tensor.datatype]
    if dtype is not None:
        return np.asarray(tensor.values, dtype=dtype).tobytes()
    parts = []
    for value in tensor.values:
        data = value if isinstance(value, bytes) else value.encode() if isinstance(value, str) else orjson.dumps(value)
        parts += [_LENGTH.pack(len(data)), data]
    return b"".join(parts)

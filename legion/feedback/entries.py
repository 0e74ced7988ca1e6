"""What a writer appends to the buffer (an *entry*) and how the shipper turns entries into records.

An entry is one ``marshal``-ed tuple whose first item is its kind:

- ``RECORD``: a record the writer made itself (feedback): its place and its JSON, as ``records.Encoded``;
- ``PREDICTION``: a model call as the gateway saw it, raw: the time, request id, deployment and its model, the
  method, path and public request headers, both bodies with their content types, the status, the latency and
  the replica's ``Model-*`` headers. ``expand`` makes its ``request_response`` and ``response_body`` records.

Why predictions are kept raw: the gateway appends a prediction on the request path, before the caller has the
answer, so that a 200 is never without its record. At concurrency 32 every microsecond there is added 32 times
to the time a batch takes to reach the model. Decoding the bodies and making the two JSON records took 15-20 us
a prediction in the running gateway; ``marshal`` of a tuple of bytes and numbers is a few. The shipper, a
process of its own that runs ``nice`` in the gaps while the model computes, does the rest.

Credentials never reach the disk: ``prediction`` leaves out the request headers that carry them
(``records.SECRET_HEADERS``) before anything is written.
"""

from __future__ import annotations

import marshal
import time
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import Any, Final, NamedTuple

import orjson

from legion.feedback import records
from legion.feedback.records import Encoded, Place

RECORD: Final = 1
PREDICTION: Final = 2
MARSHAL_VERSION: Final = 2
"""The ``marshal`` format written: every Python 3 reads it, and unlike 3 and 4 it keeps no table of the objects
it wrote (a third faster for an entry, measured: 0.8 against 1.2 us)."""

_JSON_TYPES: Final = (b"application/json", b"text/json")
SAID_HEADERS: Final = frozenset({b"model-name", b"model-version", b"model-endpoint", b"content-type"})
"""What a replica's answer says about itself (its model, version, endpoint and body type): all an entry keeps."""


def record(made: Mapping[str, Any]) -> bytes:
    """The entry for a record."""
    encoded = records.encode(made)
    return marshal.dumps((RECORD, *encoded.place, encoded.json), MARSHAL_VERSION)


def prediction(
    *,
    request_id: bytes,
    deployment: str,
    model: tuple[str, str],
    method: str,
    path: bytes,
    headers: Iterable[tuple[bytes, bytes]],
    body: bytes,
    content_type: bytes,
    status: int,
    latency_s: float,
    answer_headers: Iterable[tuple[bytes, bytes]],
    answer: bytes,
) -> bytes:
    """The entry for a model call (on the request path: no decoding, no JSON). ``model`` is the deployment's model
    name and version, used where the replica's answer (``answer_headers``, names lower-cased) does not say them."""
    public = [pair for pair in headers if pair[0].lower() not in records.SECRET_HEADER_NAMES]
    said = [pair for pair in answer_headers if pair[0] in SAID_HEADERS]
    return marshal.dumps(
        (PREDICTION, time.time_ns(), request_id, deployment, *model, method, path, public, body, content_type,
         status, latency_s, said, answer),
        MARSHAL_VERSION,
    )  # fmt: skip


def expand(entry: bytes) -> list[Encoded]:
    """The records an entry holds; ``ValueError`` for one that is not an entry."""
    try:
        fields = marshal.loads(entry)  # noqa: S302  # the buffer's own file (0600), checksummed (buffer.frame)
    except (EOFError, TypeError, ValueError) as exc:
        raise ValueError(f"not a buffer entry: {exc}") from exc
    if not isinstance(fields, tuple) or not fields:
        raise ValueError("not a buffer entry")
    if fields[0] == RECORD and len(fields) == 6:
        return [Encoded(Place(*fields[1:5]), fields[5])]
    if fields[0] == PREDICTION and len(fields) == 15:
        return _prediction_records(fields)
    raise ValueError(f"not a buffer entry (kind {fields[0]!r}, {len(fields)} fields)")


def _prediction_records(fields: tuple[Any, ...]) -> list[Encoded]:
    (_, time_ns, request_id, deployment, model_name, model_version, method, path, headers, body, content_type, status,
     latency_s, said_pairs, answer) = fields  # fmt: skip
    valid = status == 200
    stamp = records.stamp(time_ns)
    served = _served((tuple(said_pairs), model_name, model_version, method, deployment, stamp[:13]))
    request_id = request_id.decode("latin-1")
    exchange = records.request_response_call(
        request_id=request_id, path=path.decode("latin-1"), headers=headers,
        request_body=decode(body, content_type, valid=valid), status=status, latency_s=latency_s, time=stamp,
    )  # fmt: skip
    output = records.response_body_call(
        request_id=request_id, body=decode(answer, served.content_type, valid=valid), time=stamp
    )
    return [Encoded(served.exchange_place, served.exchange + records.closed(exchange)),
            Encoded(served.output_place, served.output + records.closed(output))]  # fmt: skip


class _Served(NamedTuple):
    """What the records of the calls to one model endpoint in one hour share."""

    exchange_place: Place
    exchange: bytes
    """The shared fields of the ``request_response`` record (``records.opened``)."""
    output_place: Place
    output: bytes
    """The shared fields of the ``response_body`` record."""
    content_type: bytes
    """Of the answer."""


@lru_cache(maxsize=1024)
def _served(call: tuple[tuple[tuple[bytes, bytes], ...], str, str, str, str, str]) -> _Served:
    """What a call's two records share, from what the replica said about itself (``SAID_HEADERS``), the deployment's
    model name and version, the method, deployment and hour: made once for each, not per call (making it per call
    was the largest part of the shipper's work: 9.9 us a prediction, against 6.3 so). Nothing in it varies from
    call to call (not the path: its query string does), so the cache holds a few entries a model."""
    said_pairs, deployed_name, deployed_version, method, deployment, hour = call
    said = dict(said_pairs)
    model_name = said.get(b"model-name", b"").decode("latin-1") or deployed_name
    model_version = said.get(b"model-version", b"").decode("latin-1") or deployed_version
    endpoint = said.get(b"model-endpoint", b"").decode("latin-1") or "default"
    exchange = records.request_response_served(
        model_name=model_name, model_version=model_version, endpoint=endpoint, method=method, deployment=deployment
    )
    output = records.response_body_served(model_name=model_name, model_version=model_version, deployment=deployment)
    return _Served(
        records.place(records.REQUEST_RESPONSE, model_name, model_version, hour),
        records.opened(exchange),
        records.place(records.RESPONSE_BODY, model_name, model_version, hour),
        records.opened(output),
        said.get(b"content-type", b""),
    )


@lru_cache(maxsize=256)
def _is_json(content_type: bytes) -> bool:
    return content_type.split(b";", 1)[0].strip().lower() in _JSON_TYPES


def decode(body: bytes, content_type: bytes, *, valid: bool = False) -> Any:
    """JSON bodies as their value; anything else as text (bytes that are not UTF-8 as latin-1).

    ``valid``: the model server parsed or wrote this JSON itself (it answered 200), so a one-line body goes into
    the record as it is (``orjson.Fragment``), without parsing it again."""
    if not body:
        return None
    if _is_json(content_type):
        if valid and b"\n" not in body:  # a body of several lines would cut a JSON-lines file's line
            return orjson.Fragment(body)
        try:
            return orjson.loads(body)
        except orjson.JSONDecodeError:
            pass
    try:
        return body.decode()
    except UnicodeDecodeError:
        return body.decode("latin-1")

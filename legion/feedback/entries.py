"""What a writer appends to the buffer (an *entry*) and how the shipper turns entries into records.

An entry is one ``marshal``-ed tuple whose first item is its kind:

- ``RECORD``: a record the writer made itself (feedback): its place and its JSON, as ``records.Encoded``;
- ``PREDICTION``: the time and a model call as the gateway saw it, raw (a ``ModelCall``: request id, deployment
  and its model, method, path and public request headers, both bodies with their content types, the status, the
  latency and the replica's ``Model-*`` headers). ``expand`` makes its ``request_response`` and ``response_body``
  records.

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
from collections.abc import Mapping, Sequence
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


class ModelCall(NamedTuple):
    """One model call as the gateway saw it, raw: the request it forwarded and the replica's answer, undecoded.

    The gateway makes one per logged prediction (``legion.gateway.proxy``) and hands it on unchanged to
    ``PredictionRecorder.prediction`` and ``prediction`` here. A tuple, not a dataclass: it is made on the request
    path, where making a tuple of 13 costs an eighth of a frozen dataclass's ``__init__``. A prediction entry holds
    these fields in this order (after its kind and time), so ``expand`` reads an entry back as a ``ModelCall``; the
    order is the buffer's format: append new fields at the end, never reorder.

        call = ModelCall(b"5f0c...", "census", "census", "1.0", "POST", b"/api/model/invoke", headers, body,
                         b"application/json", 200, 0.004, answer_headers, answer)
    """

    request_id: bytes
    deployment: str
    model_name: str
    """The deployment's model name, used where the replica's answer does not say it (``""`` when unknown)."""
    model_version: str
    """The deployment's model version, likewise."""
    method: str
    path: bytes
    """The path the replica was sent, with its query string."""
    headers: Sequence[tuple[bytes, bytes]]
    """The forwarded request's headers (``prediction`` leaves out the ones that carry credentials)."""
    body: bytes
    content_type: bytes
    """Of the request."""
    status: int
    """The replica's answer: its status, ..."""
    latency_s: float
    """... how long it took (seconds), ..."""
    answer_headers: Sequence[tuple[bytes, bytes]]
    """... its headers, names lower-cased (``prediction`` keeps ``SAID_HEADERS``) ..."""
    answer: bytes
    """... and its body."""


def prediction(call: ModelCall) -> bytes:
    """The entry for a model call (on the request path: no decoding, no JSON): ``call``'s fields in their order,
    without the request headers that carry credentials and with only what the replica said about itself."""
    public = [pair for pair in call.headers if pair[0].lower() not in records.SECRET_HEADER_NAMES]
    said = [pair for pair in call.answer_headers if pair[0] in SAID_HEADERS]
    return marshal.dumps(
        (PREDICTION, time.time_ns(), call.request_id, call.deployment, call.model_name, call.model_version,
         call.method, call.path, public, call.body, call.content_type, call.status, call.latency_s, said,
         call.answer),
        MARSHAL_VERSION,
    )  # fmt: skip


_PREDICTION_FIELDS: Final = 2 + len(ModelCall._fields)


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
    if fields[0] == PREDICTION and len(fields) == _PREDICTION_FIELDS:
        return _prediction_records(fields[1], ModelCall._make(fields[2:]))
    raise ValueError(f"not a buffer entry (kind {fields[0]!r}, {len(fields)} fields)")


def _prediction_records(time_ns: int, call: ModelCall) -> list[Encoded]:
    valid = call.status == 200
    stamp = records.stamp(time_ns)
    served = _served((tuple(call.answer_headers), call.model_name, call.model_version, call.method, call.deployment,
                      stamp[:13]))  # fmt: skip
    request_id = call.request_id.decode("latin-1")
    exchange = records.request_response_call(
        request_id=request_id, path=call.path.decode("latin-1"), headers=call.headers,
        request_body=decode(call.body, call.content_type, valid=valid), status=call.status, latency_s=call.latency_s,
        time=stamp,
    )  # fmt: skip
    output = records.response_body_call(
        request_id=request_id, body=decode(call.answer, served.content_type, valid=valid), time=stamp
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

"""The three record kinds, with Legion's tags: ``request_response``, ``response_body`` and ``feedback``.

A record is a flat JSON object; ``tag``, ``model_name``, ``model_version`` and the hour of ``time`` place it in a
sink (Legion's file layout is built from them: its ``Place``). Headers that carry credentials never enter a
record.

From the shipper to the sinks a record travels ``Encoded``: its JSON (made once) and its place, so the sinks
route and write records without parsing and re-encoding them; a sink that needs the values (Fluentd's msgpack)
parses them with ``Encoded.value()``. (How the buffer keeps records: ``entries``.)

A prediction's two records are each made of two parts: the fields that every call to the same model endpoint
shares (``request_response_served``, ``response_body_served``), first, then the call's own
(``*_call``). The shipper encodes the shared part once (``opened``) and only the call's own per call
(``closed``), which is the same JSON as encoding the whole record.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple, NotRequired, TypedDict, Unpack

import orjson

REQUEST_RESPONSE: Final = "request_response"
RESPONSE_BODY: Final = "response_body"
FEEDBACK: Final = "feedback"
TAGS: Final = (REQUEST_RESPONSE, RESPONSE_BODY, FEEDBACK)
SECRET_HEADERS: Final = frozenset({"authorization", "cookie", "set-cookie", "proxy-authorization", "x-api-key"})
SECRET_HEADER_NAMES: Final = frozenset(name.encode() for name in SECRET_HEADERS)
"""``SECRET_HEADERS`` as the raw names of an HTTP message."""


def public_headers(headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]]) -> dict[str, str]:
    """The headers without the ones that carry credentials (names lower-cased); a mapping, or the raw pairs of an
    HTTP message (decoded here, in the same pass)."""
    if isinstance(headers, list):  # the common case first: isinstance(..., Mapping) takes longer than the rest
        secret = SECRET_HEADER_NAMES
        return {name.decode("latin-1"): v.decode("latin-1") for k, v in headers if (name := k.lower()) not in secret}
    if isinstance(headers, Mapping):
        return {k.lower(): v for k, v in headers.items() if k.lower() not in SECRET_HEADERS}
    return public_headers(list(headers))


_second: tuple[int, str] = (-1, "")


def now() -> str:
    """A record's ``time``: now, in UTC, ISO 8601 with microseconds (``2026-11-25T13:05:00.123456+00:00``)."""
    return stamp(time.time_ns())


def stamp(time_ns: int) -> str:
    """A record's ``time`` for ``time.time_ns()``'s value ``time_ns``.

    The date and time of day are formatted once a second: this runs for every prediction, and formatting a
    datetime costs more than the rest of the record's fields together."""
    global _second  # noqa: PLW0603  # one cache per process
    second, micro = divmod(time_ns // 1000, 1_000_000)
    if second != _second[0]:
        _second = (second, datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S"))
    return f"{_second[1]}.{micro:06d}+00:00"


class RequestResponseFields(TypedDict):
    """The fields ``request_response`` takes: what is served (``request_response_served``) and the call's own
    (``request_response_call``)."""

    request_id: str
    model_name: str
    model_version: str
    endpoint: str
    method: str
    path: str
    headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]]
    request_body: Any
    status: int
    latency_s: float
    deployment: NotRequired[str | None]
    time: NotRequired[str | None]


def request_response(**fields: Unpack[RequestResponseFields]) -> dict[str, Any]:
    """A model call: what came in, how it went (``request_response_served`` first, then ``request_response_call``).

    >>> request_response(request_id="r1", model_name="census", model_version="1.0", endpoint="default",
    ...                  method="POST", path="/api/model/invoke", headers={}, request_body={}, status=200,
    ...                  latency_s=0.004)  # doctest: +SKIP
    """
    served = request_response_served(
        model_name=fields["model_name"], model_version=fields["model_version"], endpoint=fields["endpoint"],
        method=fields["method"], deployment=fields.get("deployment"),
    )  # fmt: skip
    return served | request_response_call(
        request_id=fields["request_id"], path=fields["path"], headers=fields["headers"],
        request_body=fields["request_body"], status=fields["status"], latency_s=fields["latency_s"],
        time=fields.get("time"),
    )  # fmt: skip


def request_response_served(
    *, model_name: str, model_version: str, endpoint: str, method: str, deployment: str | None
) -> dict[str, Any]:
    """The fields of a ``request_response`` record that every call to the same model endpoint with the same method
    shares (so the shipper encodes them once: ``entries``)."""
    return {
        "tag": REQUEST_RESPONSE,
        "model_name": model_name,
        "model_version": model_version,
        "model_endpoint": endpoint,
        "request_http_method": method,
        "deployment": deployment,
    }


def request_response_call(
    *,
    request_id: str,
    path: str,
    headers: Mapping[str, str] | Iterable[tuple[bytes, bytes]],
    request_body: Any,
    status: int,
    latency_s: float,
    time: str | None = None,
) -> dict[str, Any]:
    """The fields of a ``request_response`` record that are the call's own (the path too: its query string is)."""
    return {
        "request_id": request_id,
        "request_uri": path,
        "request_http_headers": public_headers(headers),
        "request_content": request_body,
        "response_status": status,
        "response_duration_s": latency_s,
        "time": time or now(),
    }


def response_body(
    *,
    request_id: str,
    model_name: str,
    model_version: str,
    body: Any,
    deployment: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    """A model's answer (``response_body_served`` first, then ``response_body_call``)."""
    served = response_body_served(model_name=model_name, model_version=model_version, deployment=deployment)
    return served | response_body_call(request_id=request_id, body=body, time=time)


def response_body_served(*, model_name: str, model_version: str, deployment: str | None) -> dict[str, Any]:
    """The fields of a ``response_body`` record that every answer of the same model shares."""
    return {"tag": RESPONSE_BODY, "model_name": model_name, "model_version": model_version, "deployment": deployment}


def response_body_call(*, request_id: str, body: Any, time: str | None = None) -> dict[str, Any]:
    """The fields of a ``response_body`` record that are the answer's own."""
    return {"request_id": request_id, "response_content": body, "time": time or now()}


def feedback(
    *,
    request_id: str,
    model_name: str,
    model_version: str,
    payload: Any,
    deployment: str | None = None,
    time: str | None = None,
) -> dict[str, Any]:
    return {
        "tag": FEEDBACK,
        "request_id": request_id,
        "model_name": model_name,
        "model_version": model_version,
        "payload": payload,
        "deployment": deployment,
        "time": time or now(),
    }


class Place(NamedTuple):
    """Where a record goes in a sink: its tag, model, version and UTC hour (``2026-11-25T13``)."""

    tag: str
    model_name: str
    model_version: str
    hour: str


class Encoded(NamedTuple):
    """A record as the sinks write it: its place and its JSON (one object, no newline). (A tuple: the shipper
    makes one per record.)"""

    place: Place
    json: bytes

    def value(self) -> dict[str, Any]:
        record: dict[str, Any] = orjson.loads(self.json)
        return record


def place_of(record: Mapping[str, Any]) -> Place:
    """The place of a record from its fields (``unknown`` for what it lacks; a ``time`` it lacks is now)."""
    stamp = record.get("time")
    if isinstance(stamp, str) and stamp.endswith("+00:00") and len(stamp) >= 13:
        hour = stamp[:13]  # the records' own UTC ISO times
    else:
        hour = f"{moment(stamp):%Y-%m-%dT%H}"
    return place(record.get("tag"), record.get("model_name"), record.get("model_version"), hour)


def place(tag: Any, model_name: Any, model_version: Any, hour: str) -> Place:
    """The place of a record with these fields in ``hour`` (``unknown`` for a field that is empty or missing)."""
    return Place(str(tag or "unknown"), str(model_name or "unknown"), str(model_version or "unknown"), hour)


def moment(value: Any) -> datetime:
    """A record's ``time`` as an aware UTC datetime (now when it is missing or not ISO 8601)."""
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return datetime.now(UTC)
        return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


def encode(record: Mapping[str, Any]) -> Encoded:
    """The record's JSON and its place."""
    return Encoded(place_of(record), orjson.dumps(record, option=orjson.OPT_SERIALIZE_NUMPY))


def opened(fields: Mapping[str, Any]) -> bytes:
    """``fields`` as the start of a JSON object that goes on (``{"a":1,``): ``opened(a) + closed(b)`` is the JSON of
    ``a | b`` (for ``a`` and ``b`` without common keys, ``b`` not empty). Fields shared by many records are encoded
    once so."""
    return orjson.dumps(fields)[:-1] + b"," if fields else b"{"


def closed(fields: Mapping[str, Any]) -> bytes:
    """``fields`` as the end of a JSON object begun by ``opened``."""
    return orjson.dumps(fields, option=orjson.OPT_SERIALIZE_NUMPY)[1:]


def decode_line(line: bytes) -> Encoded:
    """A line of a buffer segment written before entries (``<place as a JSON array>\t<record JSON>``, or the
    record alone) back to the record; ``ValueError`` for one that is not a record (a line a crash cut short)."""
    head, tab, body = line.partition(b"\t")
    if not tab:
        record = orjson.loads(line)
        if not isinstance(record, dict):
            raise ValueError("not a JSON object")
        return Encoded(place_of(record), line)
    if body[:1] != b"{" or body[-1:] != b"}":
        raise ValueError("the record is cut short")
    fields = orjson.loads(head)
    if not (isinstance(fields, list) and len(fields) == 4 and all(isinstance(f, str) for f in fields)):
        raise ValueError("the record's place is not four strings")
    return Encoded(Place(*fields), body)

"""Buffer entries: a record, or a model call kept raw that the shipper makes into its two records."""

from __future__ import annotations

import marshal
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from legion.feedback import entries, records
from legion.feedback.entries import ModelCall
from legion.feedback.records import Encoded, Place, encode

CALL: dict[str, Any] = {
    "request_id": b"r1", "deployment": "census", "model_name": "census", "model_version": "1.0", "method": "POST",
    "path": b"/api/model/invoke", "body": b'{"columns": ["a"], "data": [[1]]}', "content_type": b"application/json",
    "status": 200, "latency_s": 0.01, "answer_headers": [(b"content-type", b"application/json")],
    "answer": b'{"prediction": [[0.9]]}',
}  # fmt: skip


def test_a_record_entry_gives_back_the_record() -> None:
    made = records.feedback(request_id="r", model_name="census", model_version="1.0", payload={"y": 1},
                            time="2026-11-25T13:05:00+00:00")  # fmt: skip
    assert entries.expand(entries.record(made)) == [encode(made)]
    assert encode(made).place == Place("feedback", "census", "1.0", "2026-11-25T13")


def test_a_prediction_entry_makes_the_same_records_as_the_record_functions() -> None:
    headers = [(b"content-type", b"application/json"), (b"host", b"h")]
    exchange, answer = entries.expand(entries.prediction(ModelCall(**CALL, headers=headers)))
    time = exchange.value()["time"]
    common = {"request_id": "r1", "model_name": "census", "model_version": "1.0", "deployment": "census", "time": time}
    assert exchange.value() == records.request_response(
        **common, endpoint="default", method="POST", path="/api/model/invoke",
        headers={"content-type": "application/json", "host": "h"}, request_body={"columns": ["a"], "data": [[1]]},
        status=200, latency_s=0.01,
    )  # fmt: skip
    assert answer.value() == records.response_body(**common, body={"prediction": [[0.9]]})
    assert exchange.place == Place("request_response", "census", "1.0", time[:13])
    assert answer.place == Place("response_body", "census", "1.0", time[:13])


def test_what_the_replica_says_about_its_model_wins_over_the_deployment() -> None:
    said = [(b"model-name", b"census"), (b"model-version", b"2.0"), (b"model-endpoint", b"proba")]
    exchange, answer = entries.expand(entries.prediction(ModelCall(**{**CALL, "answer_headers": said}, headers=[])))
    assert (exchange.place.model_version, answer.place.model_version) == ("2.0", "2.0")
    assert exchange.value()["model_endpoint"] == "proba"
    assert answer.value()["response_content"] == '{"prediction": [[0.9]]}', "no JSON content type: kept as text"


@pytest.mark.parametrize("name", [b"authorization", b"Cookie", b"x-api-key"])
def test_credentials_never_reach_the_buffer(name: bytes) -> None:
    entry = entries.prediction(ModelCall(**CALL, headers=[(name, b"secret-value"), (b"accept", b"*/*")]))
    assert b"secret-value" not in entry, "not even on disk"
    exchange, _ = entries.expand(entry)
    assert exchange.value()["request_http_headers"] == {"accept": "*/*"}


@pytest.mark.parametrize(
    "entry",
    [b"", b"\x00garbage", marshal.dumps([1, 2]), marshal.dumps((9, "x")), marshal.dumps((entries.RECORD, "short"))],
)
def test_what_is_not_an_entry_is_a_value_error(entry: bytes) -> None:
    with pytest.raises(ValueError, match="not a buffer entry"):
        entries.expand(entry)


def test_bodies_enter_records_as_json_whatever_their_shape() -> None:
    """A body the model took or wrote (200) goes in as it is unless it spans lines; others are parsed or kept as
    text; either way the record is one valid JSON line with the same value."""
    cases = [
        (b'{"a": [1, 2]}', b"application/json", True, {"a": [1, 2]}),
        (b'{\n  "a": [1, 2]\n}', b"application/json; charset=utf-8", True, {"a": [1, 2]}),  # pretty-printed
        (b"{oops", b"application/json", False, "{oops"),  # refused by the model: kept as text
        (b"a,b\n1,2\n", b"text/csv", True, "a,b\n1,2\n"),
        (b"\xff\xfe", b"application/octet-stream", True, "\xff\xfe"),
        (b"", b"application/json", True, None),
    ]
    for body, content_type, valid, value in cases:
        line = orjson.dumps({"request_content": entries.decode(body, content_type, valid=valid)})
        assert b"\n" not in line
        assert orjson.loads(line) == {"request_content": value}


_latin1 = st.text(st.characters(max_codepoint=255), max_size=12)
_json = st.recursive(st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(max_size=8),
                     lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3),
                     max_leaves=8)  # fmt: skip


@given(
    request_id=_latin1, said=st.lists(st.sampled_from(sorted(entries.SAID_HEADERS - {b"content-type"})), unique=True),
    name=_latin1, version=_latin1, endpoint=_latin1, deployment=st.text(max_size=12), path=_latin1,
    headers=st.dictionaries(st.text("abcdefgh-", min_size=1, max_size=8), _latin1, max_size=4), body=_json,
    answer=_json, status=st.sampled_from([200, 400, 500]), latency_s=st.floats(0, 100),
)  # fmt: skip
def test_a_prediction_entry_makes_exactly_the_bytes_of_the_record_functions(
    *,
    request_id: str,
    said: list[bytes],
    name: str,
    version: str,
    endpoint: str,
    deployment: str,
    path: str,
    headers: dict[str, str],
    body: Any,
    answer: Any,
    status: int,
    latency_s: float,
) -> None:
    """The shipper encodes the fields every call shares once (``records.opened``); the records are still, byte for
    byte, the JSON of ``records.request_response`` and ``records.response_body``, whatever the fields hold."""
    values = {b"model-name": name, b"model-version": version, b"model-endpoint": endpoint}
    answer_headers = [(b"content-type", b"application/json")] + [(h, values[h].encode("latin-1")) for h in said]
    entry = entries.prediction(ModelCall(
        request_id=request_id.encode("latin-1"), deployment=deployment, model_name="deployed", model_version="0",
        method="POST", path=path.encode("latin-1"),
        headers=[(k.encode(), v.encode("latin-1")) for k, v in headers.items()], body=orjson.dumps(body),
        content_type=b"application/json", status=status, latency_s=latency_s, answer_headers=answer_headers,
        answer=orjson.dumps(answer),
    ))  # fmt: skip
    exchange, output = entries.expand(entry)
    time = exchange.value()["time"]
    told = {h: values[h] for h in said}
    common = {"request_id": request_id, "model_name": told.get(b"model-name") or "deployed",
              "model_version": told.get(b"model-version") or "0", "deployment": deployment, "time": time}  # fmt: skip
    assert exchange == encode(records.request_response(
        **common, endpoint=told.get(b"model-endpoint") or "default", method="POST", path=path, headers=headers,
        request_body=body, status=status, latency_s=latency_s,
    ))  # fmt: skip
    assert output == encode(records.response_body(**common, body=answer))


def test_opened_and_closed_fields_make_one_object() -> None:
    shared, own = {"tag": "t", "n": [1, {"x": None}]}, {"id": 'a"b\n', "v": 1.5}
    assert records.opened(shared) + records.closed(own) == orjson.dumps(shared | own)
    assert records.opened({}) + records.closed(own) == orjson.dumps(own)


def test_an_encoded_record_is_its_json_and_place() -> None:
    made = records.response_body(request_id="r", model_name="", model_version="1", body=[1],
                                 time="2026-11-25T13:05:00+00:00")  # fmt: skip
    assert encode(made) == Encoded(Place("response_body", "unknown", "1", "2026-11-25T13"), orjson.dumps(made))

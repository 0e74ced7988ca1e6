"""Bad input gets a 4xx naming the problem on every API; the server keeps serving; model errors are 500s
without a traceback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.serving.toy_models import save_toy
from tests.support.rawhttp import exchange, head_of_size, oversized_head
from tests.support.server import ServerProcess, failed_start, serving

GOOD = {"columns": ["a", "b", "s"], "data": [[1, 2.5, "x"]]}


@pytest.fixture(scope="module")
def toy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    model = save_toy(tmp_path_factory.mktemp("toy") / "model")
    with serving(model, ["--max-body-bytes", "4096"]) as server:
        yield server


def era_b(body: Any) -> dict[str, Any]:
    return {"path": "/api/model/invoke", "json": body}


CASES = [
    ("missing column", era_b({"columns": ["a", "b"], "data": [[1, 2.5]]}), 422, "s: missing column"),
    ("abc for an integer", era_b({"columns": ["a", "b", "s"], "data": [["abc", 2.5, "x"]]}), 422, "a: 'abc' is not an integer"),
    ("null for a float", era_b({"columns": ["a", "b", "s"], "data": [[1, None, "x"]]}), 422, "b: NaN (or null) is not allowed"),
    ("NaN text for a float", era_b({"columns": ["a", "b", "s"], "data": [[1, "NaN", "x"]]}), 422, "b: NaN (or null)"),
    ("NaN literal", {"path": "/api/model/invoke", "content": b'{"columns":["a","b","s"],"data":[[1,NaN,"x"]]}',
                     "headers": {"content-type": "application/json"}}, 400, "not valid JSON"),
    ("unknown column", era_b({"columns": ["a", "b", "s", "zz"], "data": [[1, 2.5, "x", 0]]}), 422, "zz: unknown column"),
    ("ragged row", era_b({"columns": ["a", "b", "s"], "data": [[1, 2.5]]}), 400, "row 0 must be a list of 3 values"),
    ("no data", era_b({"columns": ["a", "b", "s"], "data": []}), 400, "'data' must be a non-empty list"),
    ("not an object", era_b([1, 2]), 400, "expected a JSON object"),
    ("empty body", {"path": "/api/model/invoke", "content": b"", "headers": {"content-type": "application/json"}},
     400, "body is empty"),
    ("invalid JSON", {"path": "/api/model/invoke", "content": b"{oops", "headers": {"content-type": "application/json"}},
     400, "not valid JSON"),
    ("wrong content type", {"path": "/api/model/invoke", "content": b"a=1", "headers": {"content-type": "text/plain"}},
     415, "content type 'text/plain' is not supported"),
    ("oversized body", {"path": "/api/model/invoke", "content": b"[" + b"1," * 4000 + b"1]",
                        "headers": {"content-type": "application/json"}}, 413, "over the limit of 4096 bytes"),
    ("unknown endpoint", {"path": "/api/model/invoke/nope", "json": GOOD}, 404, "valid endpoints: default"),
    ("unknown route", {"path": "/api/nothing", "json": GOOD}, 404, "no route POST /api/nothing"),
    ("era-a wrong type", {"path": "/api/model/toy/1/invoke", "params": {"a": "x", "b": "1", "s": "q"}}, 422, "a: 'x'"),
    ("era-a no input", {"path": "/api/model/toy/1/invoke", "content": b""}, 400, "no input given"),
    ("v2 no inputs", {"path": "/v2/models/toy/infer", "json": {"inputs": []}}, 400, '"inputs" must be a non-empty list'),
    ("v2 shape mismatch", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [2], "datatype": "INT64", "data": [1]}]}}, 400, "input 'a': shape [2] does not hold 1 values"),
    ("v2 bad value", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [1], "datatype": "BYTES", "data": ["z"]},
        {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}}, 422, "a: 'z' is not an integer"),
    ("v2 text in an INT64 input", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [1], "datatype": "INT64", "data": ["z"]},
        {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}}, 400,
     "input 'a': 'z' does not match its datatype INT64"),
    ("v2 float in an INT64 input", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [1], "datatype": "INT64", "data": [1.5]},
        {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}}, 400,
     "input 'a': 1.5 does not match its datatype INT64"),
    ("v2 number in a BYTES input", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "s", "shape": [1], "datatype": "BYTES", "data": [7]}]}}, 400,
     "input 's': 7 does not match its datatype BYTES"),
    ("v2 text in an FP64 input", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "b", "shape": [1], "datatype": "FP64", "data": ["1.0"]},
        {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}}, 400,
     "input 'b': '1.0' does not match its datatype FP64"),
    ("v2 bool in an FP64 input", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [1], "datatype": "INT64", "data": [1]},
        {"name": "b", "shape": [1], "datatype": "FP64", "data": [True]},
        {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}}, 400,
     "input 'b': True does not match its datatype FP64"),
    ("v2 out of range", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [1], "datatype": "INT8", "data": [300]},
        {"name": "b", "shape": [1], "datatype": "FP64", "data": [1.0]},
        {"name": "s", "shape": [1], "datatype": "BYTES", "data": ["x"]}]}}, 400, "input 'a': 300 is out of range for INT8"),
    ("v2 unknown datatype", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [1], "datatype": "INT65", "data": [1]}]}}, 400, "input 'a': datatype 'INT65' is not one of"),
    ("v2 no datatype", {"path": "/v2/models/toy/infer", "json": {"inputs": [
        {"name": "a", "shape": [1], "data": [1]}]}}, 400, "input 'a': datatype None is not one of"),
    ("mlflow two formats", {"path": "/invocations", "json": {"instances": [], "inputs": []}}, 400, "exactly one of"),
    ("mlflow bad record", {"path": "/invocations", "json": {"dataframe_records": [{"a": 1, "b": "q", "s": "x"}]}},
     422, "b: 'q' is not a number"),
    ("properties unknown", {"path": "/api/model/properties", "method": "PUT", "json": {"nope": 1}}, 422,
     "nope: not a defined property"),
    ("two Authorization headers", {"path": "/api/model/invoke", "json": GOOD, "headers": [
        ("Authorization", "Bearer a"), ("Authorization", "Bearer b")]}, 400, "more than one Authorization header"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "request_args", "status", "message"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_a_named_4xx(
    toy_server: ServerProcess, name: str, request_args: dict[str, Any], status: int, message: str
) -> None:
    args = dict(request_args)
    method = args.pop("method", "POST")
    path = args.pop("path")
    response = httpx.request(method, f"{toy_server.url}{path}", timeout=10, **args)
    assert response.status_code == status, response.text
    body = response.json()
    error = body.get("error") or body.get("message")
    assert message in error
    assert "Traceback" not in response.text
    assert response.headers["request-id"]


def test_model_errors_are_500_naming_the_model_without_a_traceback(toy_server: ServerProcess) -> None:
    response = httpx.post(
        f"{toy_server.url}/api/model/invoke", json={"columns": ["a", "b", "s"], "data": [[13, 1.0, "x"]]}
    )
    assert response.status_code == 500
    assert response.json()["error"] == (
        "the model raised while predicting (endpoint 'default'): ValueError: thirteen is unlucky"
    )
    assert "Traceback" not in response.text


def test_the_server_keeps_serving_after_bad_input(toy_server: ServerProcess) -> None:
    for _ in range(3):
        httpx.post(f"{toy_server.url}/api/model/invoke", content=b"{oops", headers={"content-type": "application/json"})
        httpx.post(f"{toy_server.url}/api/model/invoke", json={"columns": ["a", "b", "s"], "data": [[13, 1.0, "x"]]})
    response = httpx.post(f"{toy_server.url}/api/model/invoke", json=GOOD)
    assert response.status_code == 200
    assert response.json() == {"prediction": [[3.5, "X"]], "columns": ["total", "label"]}


def test_a_bad_request_in_a_batch_does_not_fail_its_neighbours(toy_server: ServerProcess) -> None:
    """Concurrent requests are merged; when the merged call fails each is retried alone."""
    import concurrent.futures

    bodies = [{"columns": ["a", "b", "s"], "data": [[13 if i == 5 else 100 + i, 1.0, "x"]]} for i in range(16)]
    with httpx.Client(timeout=30) as client, concurrent.futures.ThreadPoolExecutor(16) as pool:
        answers = list(pool.map(lambda b: client.post(f"{toy_server.url}/api/model/invoke", json=b), bodies))
    codes = [a.status_code for a in answers]
    assert codes[5] == 500
    assert codes[:5] + codes[6:] == [200] * 15
    assert [a.json()["prediction"][0][0] for i, a in enumerate(answers) if i != 5] == [
        100.0 + i + 1.0 for i in range(16) if i != 5
    ]


def test_a_request_head_over_64_kib_is_a_431_answered_before_it_is_read(toy_server: ServerProcess) -> None:
    url = toy_server.url
    body = json.dumps(GOOD).encode()
    under = head_of_size(url, 60 * 1024, method="POST", path="/api/model/invoke",
                         extra=f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n")  # fmt: skip
    assert exchange(url, under + body).status == 200
    refused = exchange(url, head_of_size(url, 1 << 20, method="POST", path="/api/model/invoke"))
    assert refused.status == 431
    assert json.loads(refused.body) == {"error": "the request's header fields are over the limit of 65536 bytes"}
    assert refused.ended
    total = 64 << 20
    streamed = exchange(url, oversized_head(url, total, path="/api/model/invoke"))
    assert streamed.status == 431
    assert streamed.sent < total  # answered while the client still had most of its head to send


def test_served_model_path_without_model_fails_to_start(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, stderr = failed_start(tmp_path / "empty")
    assert code == 8
    assert "has no legion.model.yaml" in stderr

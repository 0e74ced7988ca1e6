"""Every model API of DESIGN §4 answers the census and digits models, and agrees with the in-process model."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from legion.model import Table, load_model
from tests.support.server import ServerProcess, serving

ROOT = Path(__file__).resolve().parents[2]
NINE = (ROOT / "examples/digits/data/nine.png").read_bytes()


def expected_census(model_dir: Path, columns: list[str], rows: list[list[Any]]) -> list[list[float]]:
    """What the model says in process, for comparison with every protocol."""
    from legion.serving import codecs

    endpoint = load_model(model_dir).endpoint(None)
    result = endpoint.predict(codecs.from_rows(endpoint, columns, rows))  # type: ignore[union-attr]
    assert isinstance(result, Table)
    return result.rows()


def assert_close(actual: list[list[float]], expected: list[list[float]]) -> None:
    assert np.allclose(np.array(actual, dtype=float), np.array(expected, dtype=float))


def test_era_b_invoke_answers_the_known_row(
    census_server: ServerProcess, census_model_dir: Path, census_request: dict[str, Any], client: httpx.Client
) -> None:
    response = client.post(f"{census_server.url}/api/model/invoke", json=census_request)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["columns"] == ["<=50K", ">50K"]
    assert_close(
        body["prediction"], expected_census(census_model_dir, census_request["columns"], census_request["data"])
    )
    assert response.headers["model-name"] == "census-income"
    assert response.headers["model-version"] == "1.0"
    assert response.headers["model-endpoint"] == "default"
    assert len(response.headers["request-id"]) >= 16


def test_era_b_takes_a_thousand_rows(
    census_server: ServerProcess,
    census_model_dir: Path,
    census_rows: tuple[list[str], list[list[Any]]],
    client: httpx.Client,
) -> None:
    columns, rows = census_rows
    response = client.post(f"{census_server.url}/api/model/invoke", json={"columns": columns, "data": rows})
    assert response.status_code == 200, response.text
    prediction = response.json()["prediction"]
    assert len(prediction) == 1000
    assert_close(prediction, expected_census(census_model_dir, columns, rows))


def test_era_b_info_is_the_models_openapi_document(census_server: ServerProcess, client: httpx.Client) -> None:
    info = client.get(f"{census_server.url}/api/model/info").json()
    assert info["info"] == {**info["info"], "title": "census-income", "version": "1.0"}
    assert "/api/model/invoke" in info["paths"]
    assert client.get(f"{census_server.url}/openapi.json").json() == info


def test_era_a_query_string_form_and_json_agree(
    census_server: ServerProcess, census_model_dir: Path, census_request: dict[str, Any], client: httpx.Client
) -> None:
    row = dict(zip(census_request["columns"], census_request["data"][0], strict=True))
    expected = expected_census(census_model_dir, census_request["columns"], census_request["data"])[0]
    url = f"{census_server.url}/api/model/census-income/1.0/invoke"
    answers = [
        client.get(url, params=row),
        client.post(url, params=row),
        client.post(url, data={k: str(v) for k, v in row.items()}),
        client.post(url, files={k: (None, str(v)) for k, v in row.items()}),
        client.post(url, json=row),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"<=50K": pytest.approx(expected[0]), ">50K": pytest.approx(expected[1])}


def test_era_a_key_lists_make_several_rows(
    census_server: ServerProcess, census_request: dict[str, Any], client: httpx.Client
) -> None:
    row = dict(zip(census_request["columns"], census_request["data"][0], strict=True))
    params = [(f"{k}[]", str(v)) for k, v in row.items()] * 2
    answer = client.get(f"{census_server.url}/api/model/census-income/1.0/invoke", params=params)
    assert answer.status_code == 200, answer.text
    assert len(answer.json()) == 2


def test_the_era_b_body_on_an_era_a_path_is_told_the_shape_it_takes(
    census_server: ServerProcess, census_request: dict[str, Any], client: httpx.Client
) -> None:
    base = f"{census_server.url}/api/model/census-income/1.0"
    for answer in (
        client.post(f"{base}/invoke", json=census_request),
        client.post(f"{base}/batch", json=census_request),
    ):
        assert answer.status_code == 400, answer.text
        error = answer.json()["error"]
        assert '{"age": ..., "workclass": ...' in error  # the columns by name, as this path takes them
        assert "era-b shape, for POST /api/model/invoke" in error
        assert "different lengths" not in error


def test_era_a_info_describes_every_endpoint(census_server: ServerProcess, client: httpx.Client) -> None:
    info = client.get(f"{census_server.url}/api/model/census-income/1.0/info").json()
    assert info["model_id"] == "census-income"
    assert info["endpoints"]["default"]["input_params"]["age"] == {"type": "int64", "nullable": False}


def test_era_a_batch_takes_query_lines_and_json_lists(
    census_server: ServerProcess, census_request: dict[str, Any], client: httpx.Client
) -> None:
    row = dict(zip(census_request["columns"], census_request["data"][0], strict=True))
    line = str(httpx.QueryParams({k: str(v) for k, v in row.items()}))
    url = f"{census_server.url}/api/model/census-income/1.0/batch"
    by_lines = client.post(url, content="\n".join([line] * 3), headers={"content-type": "text/plain"})
    by_json = client.post(url, json=[row, row, row])
    assert by_lines.status_code == by_json.status_code == 200, by_lines.text + by_json.text
    assert len(by_lines.json()) == 3
    assert by_lines.json() == by_json.json()


def test_era_a_address_must_match_the_served_model(census_server: ServerProcess, client: httpx.Client) -> None:
    answer = client.get(f"{census_server.url}/api/model/census-income/2.0/info")
    assert answer.status_code == 404
    assert "this server serves census-income:1.0" in answer.json()["error"]


def test_v2_infer_with_one_tensor_per_column(
    census_server: ServerProcess,
    census_model_dir: Path,
    census_rows: tuple[list[str], list[list[Any]]],
    client: httpx.Client,
) -> None:
    columns, rows = census_rows
    inputs = [
        {"name": name, "shape": [len(rows)], "datatype": "BYTES" if isinstance(rows[0][i], str) else "INT64",
         "data": [row[i] for row in rows]}
        for i, name in enumerate(columns)
    ]  # fmt: skip
    answer = client.post(f"{census_server.url}/v2/models/census-income/infer", json={"id": "q1", "inputs": inputs})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model_name"] == "census-income"
    assert body["id"] == "q1"
    outputs = {o["name"]: o for o in body["outputs"]}
    assert outputs[">50K"]["datatype"] == "FP64"
    assert outputs[">50K"]["shape"] == [1000]
    got = [list(pair) for pair in zip(outputs["<=50K"]["data"], outputs[">50K"]["data"], strict=True)]
    assert_close(got, expected_census(census_model_dir, columns, rows))


def test_v2_metadata_health_and_readiness(census_server: ServerProcess, client: httpx.Client) -> None:
    base = census_server.url
    assert client.get(f"{base}/v2/health/live").status_code == 200
    assert client.get(f"{base}/v2/health/ready").json() == {"ready": True}
    assert client.get(f"{base}/v2/models/census-income/ready").status_code == 200
    meta = client.get(f"{base}/v2/models/census-income/versions/1.0").json()
    assert meta["versions"] == ["1.0"]
    assert {"name": "age", "datatype": "INT64", "shape": [-1]} in meta["inputs"]
    assert client.get(f"{base}/v2").json()["name"] == "legion"
    missing = client.get(f"{base}/v2/models/other")
    assert missing.status_code == 404
    assert "error" in missing.json()


def test_mlflow_invocations_in_every_format(
    census_server: ServerProcess, census_model_dir: Path, census_request: dict[str, Any], client: httpx.Client
) -> None:
    columns, rows = census_request["columns"], census_request["data"]
    records = [dict(zip(columns, row, strict=True)) for row in rows]
    expected = expected_census(census_model_dir, columns, rows)
    csv_body = ",".join(columns) + "\n" + ",".join(str(v) for v in rows[0])
    url = f"{census_server.url}/invocations"
    answers = [
        client.post(url, json={"dataframe_split": {"columns": columns, "data": rows}}),
        client.post(url, json={"dataframe_records": records}),
        client.post(url, json={"instances": records}),
        client.post(url, json={"inputs": {c: [v] for c, v in zip(columns, rows[0], strict=True)}}),
        client.post(url, content=csv_body, headers={"content-type": "text/csv"}),
    ]
    for answer in answers:
        assert answer.status_code == 200, answer.text
        prediction = answer.json()["predictions"]
        assert_close([[p["<=50K"], p[">50K"]] for p in prediction], expected)
    assert client.get(f"{census_server.url}/ping").status_code == 200


def test_request_id_is_taken_echoed_or_generated(census_server: ServerProcess, client: httpx.Client) -> None:
    url = f"{census_server.url}/healthcheck"
    assert client.get(url, headers={"Request-ID": "abc-1"}).headers["request-id"] == "abc-1"
    assert client.get(url, headers={"X-Request-ID": "xyz-2"}).headers["request-id"] == "xyz-2"
    generated = {client.get(url).headers["request-id"] for _ in range(20)}
    assert len(generated) == 20


def test_digits_recognises_the_hand_drawn_nine_over_every_api(
    digits_server: ServerProcess, client: httpx.Client
) -> None:
    base = digits_server.url
    encoded = base64.b64encode(NINE).decode()
    era_a = client.post(f"{base}/api/model/digits/1.0/invoke", files={"image": ("nine.png", NINE, "image/png")})
    assert era_a.status_code == 200, era_a.text
    assert era_a.json() == {"digit": 9}
    era_b = client.post(
        f"{base}/api/model/invoke", json={"columns": ["image"], "data": [[f"data:image/png;base64,{encoded}"]]}
    )
    assert era_b.json() == {"prediction": [[9]], "columns": ["digit"]}
    v2 = client.post(
        f"{base}/v2/models/digits/infer",
        json={"inputs": [{"name": "image", "shape": [1], "datatype": "BYTES", "data": [encoded]}]},
    )
    assert v2.json()["outputs"][0]["data"] == [9]
    mlflow = client.post(f"{base}/invocations", json={"dataframe_records": [{"image": encoded}]})
    assert mlflow.json() == {"predictions": [9]}


def test_a_server_started_with_a_properties_token_takes_a_change_only_with_it(
    summation_model_dir: Path, client: httpx.Client
) -> None:
    """How the platform's runtime starts a replica: the deployment's values, and a token of the replica's own."""
    env = {"LEGION_PROPERTIES": '{"multiplier": 5}', "LEGION_PROPERTIES_TOKEN": "the-runtimes-secret"}
    with serving(summation_model_dir, env=env) as server:
        add = f"{server.url}/api/model/summation/1.0/invoke"
        assert client.get(add, params={"a": 1, "b": 2}).json() == {"result": 15}
        for headers in ({}, {"Authorization": "Bearer a-guess"}, {"Authorization": "the-runtimes-secret"}):
            refused = client.put(f"{server.url}/api/model/properties", json={"multiplier": 1}, headers=headers)
            assert refused.status_code == 403, refused.text
            assert "set through the management API" in refused.json()["error"]
        assert client.get(f"{server.url}/api/model/properties").json() == {"multiplier": 5}
        bearer = {"Authorization": "Bearer the-runtimes-secret"}
        taken = client.put(f"{server.url}/api/model/properties", json={"multiplier": 2}, headers=bearer)
        assert taken.json() == {"multiplier": 2}
        assert client.get(add, params={"a": 1, "b": 2}).json() == {"result": 6}


def test_summation_untyped_typed_and_property(summation_server: ServerProcess, client: httpx.Client) -> None:
    base = summation_server.url
    assert client.get(f"{base}/api/model/summation/1.0/invoke", params={"a": 1, "b": 2}).json() == {"result": 3}
    typed = client.post(f"{base}/api/model/invoke/sum_and_pow", json={"columns": ["a", "b"], "data": [[2, 3], [3, 2]]})
    assert typed.json() == {"prediction": [[5, 8], [5, 9]], "columns": ["sum", "pow"]}
    try:
        assert client.put(f"{base}/api/model/properties", json={"multiplier": 10}).json() == {"multiplier": 10}
        assert client.get(f"{base}/api/model/summation/1.0/invoke", params={"a": 1, "b": 2}).json() == {"result": 30}
    finally:
        client.put(f"{base}/api/model/properties", json={"multiplier": 1})

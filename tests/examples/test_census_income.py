"""The census income example: its data, its answers for known rows, and the script run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from examples.census_income import train
from legion.core.dtypes import decode_column
from legion.model import LoadedModel, Table, TypedEndpoint, load_model
from tests.support.process import run_python

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE = ROOT / "examples" / "census_income"
REQUEST = EXAMPLE / "request.json"
FIRST_ROW = 0  # 39, State-gov, Bachelors, never married, clerical: <=50K in the data
REQUEST_ROW = 8  # 31, Masters, capital gain 14,084: >50K in the data, the row of request.json

# Loads a model in a process where the examples are not importable: the apply function must have been
# pickled by value. Prints the answer to request.json as JSON records.
FRESH_LOAD = """
import importlib.util, json, sys
import pandas as pd
from legion.model import Table, load_model
assert importlib.util.find_spec("examples") is None, "the examples must not be importable here"
body = json.loads(open(sys.argv[2]).read())
table = Table.from_frame(pd.DataFrame(body["data"], columns=body["columns"]))
print(json.dumps(load_model(sys.argv[1]).endpoint("default").predict(table).records()))
"""


def endpoint_of(model: LoadedModel) -> TypedEndpoint:
    endpoint = model.endpoint("default")
    assert isinstance(endpoint, TypedEndpoint)
    return endpoint


def predict_rows(model: LoadedModel, rows: list[int]) -> Table:
    X, _ = train.load_data()
    answer = endpoint_of(model).predict(Table.from_frame(X.iloc[rows].reset_index(drop=True)))
    assert isinstance(answer, Table)
    return answer


@pytest.fixture(scope="module")
def census(census_model_dir: Path) -> LoadedModel:
    return load_model(census_model_dir)


def test_load_data_names_the_columns_and_leaves_no_missing_value() -> None:
    X, y = train.load_data()
    assert X.shape == (32561, 14)
    assert list(X.columns) == train.FEATURES
    assert set(y) == {"<=50K", ">50K"}
    assert not X.isna().any().any()
    assert (X["occupation"] == "unknown").sum() > 1000  # the "?" of the file
    assert X["age"].dtype.kind == "i"


def test_signature_is_read_from_the_sample(census: LoadedModel) -> None:
    endpoint = endpoint_of(census)
    kinds = {column.name: column.type for column in endpoint.columns}
    assert kinds == {name: "int64" if name in train.NUMERIC else "string" for name in train.FEATURES}
    assert endpoint.output_names == ("<=50K", ">50K")


def test_known_rows_get_their_known_answers(census: LoadedModel) -> None:
    answer = predict_rows(census, [FIRST_ROW, REQUEST_ROW])
    below, above = answer.arrays
    assert answer.columns == ("<=50K", ">50K")
    assert below[0] > 0.8  # the first row: <=50K
    assert above[1] > 0.8  # the row of request.json: >50K
    np.testing.assert_allclose(below + above, 1.0)


def test_probabilities_sum_to_one_for_a_batch(census: LoadedModel) -> None:
    answer = predict_rows(census, list(range(100)))
    assert len(answer) == 100
    np.testing.assert_allclose(answer.arrays[0] + answer.arrays[1], 1.0)


def test_request_json_is_a_known_row_answered_over_50k(census: LoadedModel) -> None:
    body = json.loads(REQUEST.read_text())
    X, y = train.load_data()
    assert body["columns"] == train.FEATURES
    assert body["data"] == [X.iloc[REQUEST_ROW].tolist()]
    assert y.iloc[REQUEST_ROW] == ">50K"
    endpoint = endpoint_of(census)
    table = Table(
        tuple(body["columns"]),
        tuple(
            decode_column(spec.name, spec.type, [row[i] for row in body["data"]])
            for i, spec in enumerate(endpoint.columns)
        ),
    )
    answer = endpoint.predict(table)
    assert isinstance(answer, Table)
    assert answer.records()[0][">50K"] > 0.8


def test_held_out_accuracy_is_recorded_and_sane(census: LoadedModel) -> None:
    assert 0.82 < census.manifest.metrics["accuracy"] < 0.9


def test_model_saved_from_an_import_loads_in_a_fresh_process(census_model_dir: Path, tmp_path: Path) -> None:
    records = json.loads(run_python("-c", FRESH_LOAD, str(census_model_dir), str(REQUEST), cwd=tmp_path))
    assert records[0][">50K"] > 0.8
    assert records[0]["<=50K"] + records[0][">50K"] == pytest.approx(1.0)


def test_the_version_is_1_0_unless_told(census: LoadedModel) -> None:
    assert (census.name, census.version) == ("census-income", "1.0")


def test_script_saves_a_zip_that_loads_under_the_trainings_version(tmp_path: Path) -> None:
    output = tmp_path / "census.zip"
    # As a ModelTraining runs it: $LEGION_MODEL_VERSION is the training's model.version; no edit for a retrain.
    printed = run_python(
        "examples/census_income/train.py", "--output", str(output), cwd=ROOT, env={"LEGION_MODEL_VERSION": "2.0"}
    )
    assert "held-out accuracy" in printed
    model = load_model(output)
    try:
        assert model.name == "census-income"
        assert model.version == "2.0"
        assert predict_rows(model, [REQUEST_ROW]).records()[0][">50K"] > 0.8
    finally:
        model.unload()

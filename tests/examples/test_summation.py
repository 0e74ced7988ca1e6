"""The summation example: both endpoints, the ``multiplier`` property, and the script run as a user runs it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from legion.model import LoadedModel, Table, TypedEndpoint, UntypedEndpoint, load_model
from legion.model.properties import update_properties
from tests.support.process import run_python

ROOT = Path(__file__).resolve().parents[2]

# Loads the model where the examples are not importable, with the property set at load time.
FRESH_LOAD = """
import importlib.util, json, sys
from legion.model import load_model
assert importlib.util.find_spec("examples") is None, "the examples must not be importable here"
model = load_model(sys.argv[1], property_values={"multiplier": 10})
print(json.dumps(model.endpoint("default").call({"a": "2", "b": 3})))
"""


def add(model: LoadedModel, params: dict[str, object]) -> object:
    endpoint = model.endpoint("default")
    assert isinstance(endpoint, UntypedEndpoint)
    return endpoint.call(params)


def sum_and_pow(model: LoadedModel, a: list[int], b: list[int]) -> dict[str, list[int]]:
    endpoint = model.endpoint("sum_and_pow")
    assert isinstance(endpoint, TypedEndpoint)
    answer = endpoint.predict(Table(("a", "b"), (np.array(a, dtype=np.int64), np.array(b, dtype=np.int64))))
    assert isinstance(answer, Table)
    return {name: array.tolist() for name, array in zip(answer.columns, answer.arrays, strict=True)}


@pytest.fixture
def summation(summation_model_dir: Path) -> LoadedModel:
    """A fresh load per test: loading resets the properties to the saved ones."""
    return load_model(summation_model_dir)


def test_manifest_declares_both_endpoints_and_the_property(summation: LoadedModel) -> None:
    assert summation.manifest.name == "summation"
    assert set(summation.endpoints) == {"default", "sum_and_pow"}
    assert summation.manifest.properties == {"multiplier": 1}
    columns = summation.endpoint("sum_and_pow").columns
    assert [(c.name, c.type) for c in columns] == [("a", "int64"), ("b", "int64")]


@pytest.mark.parametrize(
    ("params", "result"),
    [({"a": 1, "b": 2}, 3), ({"a": "4", "b": "5"}, 9), ({"a": -7, "b": "7"}, 0), ({"a": 2.0, "b": 40}, 42)],
)
def test_default_endpoint_adds_numbers_or_text(summation: LoadedModel, params: dict[str, object], result: int) -> None:
    assert add(summation, params) == {"result": result}


def test_sum_and_pow_answers_per_row(summation: LoadedModel) -> None:
    assert sum_and_pow(summation, [2, 3, 10], [3, 2, 0]) == {"sum": [5, 5, 10], "pow": [8, 9, 1]}


def test_changing_the_multiplier_changes_both_answers(summation: LoadedModel) -> None:
    update_properties({"multiplier": 3})
    assert add(summation, {"a": 1, "b": 2}) == {"result": 9}
    assert sum_and_pow(summation, [2, 3], [3, 2]) == {"sum": [15, 15], "pow": [24, 27]}
    update_properties({"multiplier": "1"})  # as text from an HTTP request, coerced to the property's type
    assert add(summation, {"a": 1, "b": 2}) == {"result": 3}


def test_model_saved_from_an_import_loads_in_a_fresh_process(summation_model_dir: Path, tmp_path: Path) -> None:
    printed = run_python("-c", FRESH_LOAD, str(summation_model_dir), cwd=tmp_path)
    assert json.loads(printed) == {"result": 50}


def test_script_saves_a_model_that_adds(tmp_path: Path) -> None:
    output = tmp_path / "model"
    assert "saved" in run_python("examples/summation/train.py", "--output", str(output), cwd=ROOT)
    model = load_model(output)
    assert model.version == "1.0"
    assert add(model, {"a": 20, "b": 22}) == {"result": 42}
    assert sum_and_pow(model, [2], [10]) == {"sum": [12], "pow": [1024]}


@pytest.mark.parametrize(
    ("args", "env", "version"),
    [
        ((), {"LEGION_MODEL_VERSION": "2.0"}, "2.0"),  # a ModelTraining's model.version
        (("--version", "2.1"), {"LEGION_MODEL_VERSION": "2.0"}, "2.1"),  # hyperParameters: {version: "2.1"}
    ],
)
def test_script_saves_under_the_version_it_is_given(
    tmp_path: Path, args: tuple[str, ...], env: dict[str, str], version: str
) -> None:
    output = tmp_path / "model"
    run_python("examples/summation/train.py", "--output", str(output), *args, cwd=ROOT, env=env)
    assert load_model(output).version == version

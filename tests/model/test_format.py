"""Saving and loading models: directory and zip, manifests, version checks, the modern export forms."""

from __future__ import annotations

import json
import warnings
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import sklearn
import yaml
from sklearn.linear_model import LogisticRegression

import legion.model as lm
from legion.core.errors import ConflictError, InvalidInputError, ModelFormatError, NotFoundError
from legion.model.manifest import saved_manifest
from legion.model.package import build_package
from legion.model.table import Table

FRAME = pd.DataFrame({"a": [1, 2, 3, 4], "b": [0.5, 1.5, 2.5, 3.5]})
LABELS = [0, 0, 1, 1]


def _sklearn_model(tmp_path: Path, name: str = "m") -> Path:
    builder = lm.ModelBuilder("toy", "1.0")
    builder.export_sklearn(LogisticRegression().fit(FRAME, LABELS), FRAME)
    return builder.save(tmp_path / name)


def _rewrite_manifest(model: Path, change: dict[str, object]) -> None:
    path = model / lm.MANIFEST_NAME
    manifest = yaml.safe_load(path.read_text())
    manifest.update(change)
    path.write_text(yaml.safe_dump(manifest))


def test_sklearn_export_has_predict_and_proba_endpoints(tmp_path: Path) -> None:
    model = lm.load_model(_sklearn_model(tmp_path))
    assert sorted(model.endpoints) == ["default", "predict_proba"]
    table = Table(("a", "b"), (np.array([1, 4]), np.array([0.5, 3.5])))
    predicted = model.endpoint("default").predict(table)
    assert isinstance(predicted, Table)
    assert predicted.column_lists() == [[0, 1]]
    proba = model.endpoint("predict_proba").predict(table)
    assert isinstance(proba, Table)
    assert proba.columns == ("0", "1")
    assert np.allclose(proba.arrays[0] + proba.arrays[1], 1.0)


def test_manifest_records_signature_requirements_and_provenance(tmp_path: Path) -> None:
    model = lm.load_model(_sklearn_model(tmp_path))
    manifest = model.manifest
    assert [(c.name, c.type) for c in manifest.endpoints["default"].columns or []] == [("a", "int64"), ("b", "float64")]
    assert {"scikit-learn", "numpy", "pandas", "cloudpickle"} <= set(manifest.requirements)
    assert manifest.python.count(".") == 2
    assert manifest.provenance.created_at


def test_zip_and_directory_load_the_same(tmp_path: Path) -> None:
    builder = lm.ModelBuilder("toy", "2")
    builder.export_df(lambda df: df["a"] * 2, FRAME)
    builder.save(tmp_path / "m.zip")
    builder.save(tmp_path / "dir")
    assert zipfile.is_zipfile(tmp_path / "m.zip")
    table = Table(("a", "b"), (np.array([3]), np.array([0.0])))
    for path in (tmp_path / "m.zip", tmp_path / "dir"):
        result = lm.load_model(path).endpoint(None).predict(table)
        assert isinstance(result, Table)
        assert result.column_lists() == [[6]]


def test_module_level_sdk_keeps_legions_shape(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    metrics_file = tmp_path / "metrics.jsonl"
    monkeypatch.setenv("LEGION_METRICS_FILE", str(metrics_file))
    monkeypatch.setenv("LEGION_TRAINING_ID", "training-7")
    lm.init("sdk", "3")
    lm.define_property("factor", 2)
    lm.export_df(lambda df: df["a"] * lm.get_property("factor"), FRAME)
    lm.export(lambda df: df["a"] + df["b"], {"a": "int64", "b": "float64"}, endpoint="add")
    lm.export_untyped(lambda params: {"echo": params}, endpoint="echo")
    lm.send_metric("accuracy", 0.75)
    lm.save(tmp_path / "model")
    model = lm.load_model(tmp_path / "model")
    assert model.manifest.metrics == {"accuracy": 0.75}
    assert model.manifest.properties == {"factor": 2}
    assert model.manifest.provenance.training_id == "training-7"
    assert json.loads(metrics_file.read_text().splitlines()[0])["name"] == "accuracy"
    echo = model.endpoint("echo")
    assert isinstance(echo, lm.UntypedEndpoint)
    assert echo.call({"x": "1"}) == {"echo": {"x": "1"}}
    lm.properties.update_properties({"factor": "5"})
    doubled = model.endpoint("default").predict(Table(("a", "b"), (np.array([2]), np.array([0.0]))))
    assert isinstance(doubled, Table)
    assert doubled.column_lists() == [[10]]


def test_export_fails_early_when_the_function_fails_on_the_sample() -> None:
    builder = lm.ModelBuilder("bad", "1")
    with pytest.raises(InvalidInputError, match=r"failed on the sample data frame: KeyError"):
        builder.export_df(lambda df: df["missing"], FRAME)


def test_save_refuses_to_overwrite_a_directory_that_is_not_a_model(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    builder = lm.ModelBuilder("toy", "1")
    builder.export_df(lambda df: df["a"], FRAME)
    with pytest.raises(ConflictError):
        builder.save(tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep me"


def test_version_mismatches_are_all_named(tmp_path: Path) -> None:
    model = _sklearn_model(tmp_path)
    _rewrite_manifest(model, {"python": "2.7.18", "requirements": {"numpy": "0.1.0", "surely-not-installed": "1.0"}})
    with pytest.raises(ModelFormatError) as caught:
        lm.load_model(model, strict_requirements=True)
    problems = "\n".join(caught.value.problems)
    assert "python: the model was saved with 2.7.18" in problems
    assert "numpy: the model needs 0.1.0" in problems
    assert "surely-not-installed: 1.0 is required but not installed" in problems
    assert "strict requirements" in caught.value.detail
    relaxed = lm.load_model(model, check_versions=False)
    assert len(relaxed.warnings) == 3


def test_a_version_mismatch_only_warns_while_the_model_works(tmp_path: Path) -> None:
    """As ``mlflow models serve`` does: the model loads, predicts on its example, and the differences are warnings."""
    model = _sklearn_model(tmp_path)
    _rewrite_manifest(model, {"requirements": {"numpy": "0.1.0", "surely-not-installed": "1.0"}})
    loaded = lm.load_model(model)
    assert loaded.mismatches == ["numpy: the model needs 0.1.0, " + np.__version__ + " is installed",
                                 "surely-not-installed: 1.0 is required but not installed"]  # fmt: skip
    assert set(loaded.mismatches) <= set(loaded.warnings)
    result = loaded.endpoint(None).predict(Table(("a", "b"), (np.array([4]), np.array([3.5]))))
    assert isinstance(result, Table)
    assert result.column_lists() == [[1]]


def _fails_on_13(frame: pd.DataFrame) -> pd.Series:
    if (frame["a"] == 13).any():
        raise ValueError("thirteen")
    return frame["a"] * 2


def test_a_model_failing_its_input_example_is_refused_with_the_mismatches_as_cause(tmp_path: Path) -> None:
    builder = lm.ModelBuilder("toy", "1.0")
    builder.export_df(_fails_on_13, FRAME)
    model = builder.save(tmp_path / "m")
    _rewrite_manifest(model, {"requirements": {"numpy": "0.1.0"}})
    manifest = yaml.safe_load((model / lm.MANIFEST_NAME).read_text())
    manifest["endpoints"]["default"]["example"] = {"columns": ["a", "b"], "data": [[13, 0.5]]}
    (model / lm.MANIFEST_NAME).write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelFormatError) as caught:
        lm.load_model(model)
    assert "endpoint 'default' fails on its input example" in caught.value.detail
    assert "thirteen" in caught.value.detail
    assert caught.value.problems == [f"numpy: the model needs 0.1.0, {np.__version__} is installed"]
    _rewrite_manifest(model, {"requirements": {}})  # same versions: no smoke prediction, as before
    assert lm.load_model(model).warnings == []


def test_a_model_that_cannot_be_unpickled_names_the_mismatches(tmp_path: Path) -> None:
    model = _sklearn_model(tmp_path)
    (model / "model.pkl").write_bytes(b"not a pickle")
    _rewrite_manifest(model, {"requirements": {"numpy": "0.1.0"}})
    with pytest.raises(ModelFormatError) as caught:
        lm.load_model(model)
    assert "cannot unpickle model.pkl" in caught.value.detail
    assert "likely cause, versions that differ" in caught.value.detail
    assert caught.value.problems == [f"numpy: the model needs 0.1.0, {np.__version__} is installed"]


def test_patch_differences_only_warn(tmp_path: Path) -> None:
    model = _sklearn_model(tmp_path)
    manifest = yaml.safe_load((model / lm.MANIFEST_NAME).read_text())
    numpy_pin = manifest["requirements"]["numpy"].split(".")
    _rewrite_manifest(model, {"requirements": {"numpy": ".".join([*numpy_pin[:2], "999"])}})
    assert any("numpy" in w for w in lm.load_model(model).warnings)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"formatVersion": 99}, "format version 99"),
        ({"endpoints": {"default": {"artifact": "model.pkl", "columns": [{"name": "a", "type": "int128"}]}}}, "int128"),
        ({"name": None}, "name"),
    ],
)
def test_bad_manifests_are_refused_by_reason(tmp_path: Path, change: dict[str, object], message: str) -> None:
    model = _sklearn_model(tmp_path)
    _rewrite_manifest(model, change)
    with pytest.raises(ModelFormatError, match=message):
        lm.load_model(model)


def test_missing_artifact_and_missing_manifest_are_refused(tmp_path: Path) -> None:
    model = _sklearn_model(tmp_path)
    (model / "model.pkl").unlink()
    with pytest.raises(ModelFormatError, match=r"artifact model\.pkl is missing"):
        lm.load_model(model)
    with pytest.raises(ModelFormatError, match=r"has no legion\.model\.yaml"):
        lm.load_model(tmp_path)


def test_zip_with_path_outside_the_model_is_refused(tmp_path: Path) -> None:
    archive = tmp_path / "evil.zip"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("../escape.txt", "x")
    with pytest.raises(ModelFormatError, match="outside the model"):
        lm.load_model(archive)


def test_unknown_endpoint_lists_the_valid_ones(tmp_path: Path) -> None:
    with pytest.raises(NotFoundError, match="valid endpoints: default, predict_proba"):
        lm.load_model(_sklearn_model(tmp_path)).endpoint("nope")


class Scaler:
    """A class-flavored model: ``load`` reads an artifact, ``predict`` uses it."""

    def __init__(self) -> None:
        self.factor = 0.0

    def load(self, artifacts: dict[str, Path]) -> None:
        self.factor = float(Path(artifacts["factor"]).read_text())

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        return pd.DataFrame({"scaled": frame["a"] * self.factor})


def test_class_export_loads_its_artifacts(tmp_path: Path) -> None:
    factor = tmp_path / "factor.txt"
    factor.write_text("2.5")
    builder = lm.ModelBuilder("scaler", "1")
    builder.export_class(Scaler(), FRAME, artifacts={"factor": factor})
    builder.save(tmp_path / "model")
    factor.write_text("999")  # the saved copy must be used, not the original
    model = lm.load_model(tmp_path / "model")
    result = model.endpoint(None).predict(Table(("a", "b"), (np.array([2]), np.array([0.0]))))
    assert isinstance(result, Table)
    assert result.records() == [{"scaled": 5.0}]
    assert model.manifest.flavor == "python_class"


@pytest.mark.parametrize("serialization", ["skops", "cloudpickle", "pickle"])
def test_mlflow_sklearn_model_is_served_as_is(tmp_path: Path, serialization: str) -> None:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    estimator = LogisticRegression().fit(FRAME, LABELS)
    signature = ModelSignature(Schema([ColSpec("long", "a"), ColSpec("double", "b")]), Schema([ColSpec("long")]))
    with warnings.catch_warnings():  # MLflow warns about its own type hints and about pickle; not ours to fix
        warnings.simplefilter("ignore", UserWarning)
        mlflow_sklearn.save_model(
            estimator,
            tmp_path / "mlflow",
            signature=signature,
            serialization_format=serialization,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],  # skips MLflow's slow inference subprocess
        )
    model = lm.load_model(tmp_path / "mlflow")
    assert model.manifest.flavor == "mlflow"
    assert [c.name for c in model.endpoint(None).columns] == ["a", "b"]
    result = model.endpoint(None).predict(Table(("a", "b"), (np.array([1, 4]), np.array([0.5, 3.5]))))
    assert isinstance(result, Table)
    assert result.column_lists() == [[0, 1]]


def test_mlflow_pyfunc_model_is_served_through_mlflow(tmp_path: Path) -> None:
    pyfunc = pytest.importorskip("mlflow.pyfunc")

    with warnings.catch_warnings():  # MLflow warns that the untyped predict is not validated: that is the point
        warnings.simplefilter("ignore", UserWarning)

        class AddOne(pyfunc.PythonModel):  # type: ignore[misc, name-defined]
            def predict(self, context, model_input, params=None):  # type: ignore[no-untyped-def]  # MLflow reads hints
                return model_input["a"] + 1

        pyfunc.save_model(tmp_path / "pyfunc", python_model=AddOne(), pip_requirements=["pandas"])
    assert "signature" not in (tmp_path / "pyfunc" / "MLmodel").read_text()
    with warnings.catch_warnings():  # unpickling the class by value re-runs MLflow's type-hint check
        warnings.simplefilter("ignore", UserWarning)
        model = lm.load_model(tmp_path / "pyfunc", check_versions=False)
        result = model.endpoint(None).predict(Table(("a",), (np.array([1, 2]),)))
    assert isinstance(result, Table)
    assert result.column_lists()[0] == [2, 3]


def test_properties_keep_their_type() -> None:
    lm.properties.reset_properties({"n": 1, "ratio": 0.5, "flag": False, "label": "x"})
    assert lm.properties.update_properties({"n": "3", "ratio": 1, "flag": "true", "label": 7}) == {
        "n": 3, "ratio": 1.0, "flag": True, "label": "7",
    }  # fmt: skip
    with pytest.raises(InvalidInputError) as caught:
        lm.properties.update_properties({"n": "abc", "ghost": 1})
    assert set(caught.value.fields) == {"n", "ghost"}
    assert lm.get_property("n") == 3  # all or nothing


def test_the_first_sample_row_is_kept_as_an_example(tmp_path: Path) -> None:
    builder = lm.ModelBuilder("toy", "1")
    builder.export_df(lambda df: df["a"], FRAME.assign(s=["x", "y", "z", "w"]))
    example = lm.load_model(builder.save(tmp_path / "m")).manifest.endpoints["default"].example
    assert example is not None
    assert example.model_dump() == {"columns": ["a", "b", "s"], "data": [[1, 0.5, "x"]]}


DEFINED = {"n": 1, "ratio": 0.5, "flag": False, "label": "x", "anything": None}


@pytest.mark.parametrize(
    ("values", "fields"),
    [
        ({"n": [1]}, {"n"}),
        ({"n": None}, {"n"}),
        ({"label": {"a": 1}}, {"label"}),
        ({"ratio": "nan"}, {"ratio"}),
        ({"ratio": float("inf")}, {"ratio"}),
        ({"n": 2.5, "flag": 1}, {"n", "flag"}),
        ({"ghost": 1}, {"ghost"}),
    ],
)
def test_a_property_value_that_does_not_fit_is_named(values: dict[str, object], fields: set[str]) -> None:
    with pytest.raises(InvalidInputError) as caught:
        lm.properties.check_values(DEFINED, values, where="spec.properties.")
    assert set(caught.value.fields) == {f"spec.properties.{name}" for name in fields}


def test_property_values_take_the_type_of_the_saved_ones() -> None:
    big = 2**63 + 1  # an integer is kept exactly, not rounded through a float
    assert lm.properties.check_values(DEFINED, {"n": big, "ratio": "0.7", "flag": "TRUE", "anything": [1]}) == {
        "n": big, "ratio": 0.7, "flag": True, "anything": [1],
    }  # fmt: skip


def test_the_manifest_of_a_saved_model_is_read_from_a_directory_a_zip_or_a_package(tmp_path: Path) -> None:
    builder = lm.ModelBuilder("tuned", "1")
    builder.define_property("threshold", 0.5)
    builder.export_df(lambda df: df["a"] > lm.get_property("threshold"), FRAME)
    directory, archive = builder.save(tmp_path / "model"), builder.save(tmp_path / "model.zip")
    package = tmp_path / "package"
    build_package(directory, package)
    for saved in (directory, archive, package):
        assert saved_manifest(saved).properties == {"threshold": 0.5}, saved
    for broken in (tmp_path / "missing", tmp_path / "package" / "requirements.txt"):
        with pytest.raises(ModelFormatError):
            saved_manifest(broken)

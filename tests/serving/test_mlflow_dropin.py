"""``legion serve`` takes an MLflow model directory as it is, answering like ``mlflow models serve``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression

from tests.support.server import ServerProcess, failed_start, serving

FRAME = pd.DataFrame({"a": [1, 2, 3, 4], "b": [0.5, 1.5, 2.5, 3.5]})


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    directory = tmp_path_factory.mktemp("mlflow") / "model"
    signature = ModelSignature(Schema([ColSpec("long", "a"), ColSpec("double", "b")]), Schema([ColSpec("long")]))
    with warnings.catch_warnings():  # MLflow's own notices about its defaults
        warnings.simplefilter("ignore", UserWarning)
        mlflow_sklearn.save_model(
            LogisticRegression().fit(FRAME, [0, 0, 1, 1]),
            directory,
            signature=signature,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )
    with serving(directory) as server:
        yield server


def test_invocations_answer_as_mlflow_does(mlflow_server: ServerProcess) -> None:
    url = f"{mlflow_server.url}/invocations"
    split = httpx.post(url, json={"dataframe_split": {"columns": ["a", "b"], "data": [[1, 0.5], [4, 3.5]]}})
    assert split.status_code == 200, split.text
    assert split.json() == {"predictions": [0, 1]}
    records = httpx.post(url, json={"dataframe_records": [{"a": 4, "b": 3.5}]})
    assert records.json() == {"predictions": [1]}
    assert httpx.get(f"{mlflow_server.url}/ping").status_code == 200


def test_mlflow_errors_use_mlflows_body(mlflow_server: ServerProcess) -> None:
    answer = httpx.post(f"{mlflow_server.url}/invocations", json={"dataframe_records": [{"a": "x", "b": 1.0}]})
    assert answer.status_code == 422
    assert answer.json()["error_code"] == "INVALID_PARAMETER_VALUE"
    assert "a: 'x' is not an integer" in answer.json()["message"]


def test_the_same_model_speaks_the_other_apis_too(mlflow_server: ServerProcess) -> None:
    answer = httpx.post(f"{mlflow_server.url}/api/model/invoke", json={"columns": ["a", "b"], "data": [[4, 3.5]]})
    assert answer.json() == {"prediction": [[1]], "columns": ["prediction"]}
    assert answer.headers["model-name"] == "model"


def test_mlflow_directory_with_its_own_requirements_is_checked(tmp_path: Path) -> None:
    directory = tmp_path / "broken"
    directory.mkdir()
    (directory / "MLmodel").write_text("flavors:\n  sklearn:\n    pickled_model: model.pkl\n")
    (directory / "requirements.txt").write_text("scikit-learn==0.1.0\n")
    code, stderr = failed_start(directory)
    assert code == 8
    assert "scikit-learn: the model needs 0.1.0" in stderr


@pytest.fixture(scope="module")
def older_pandas_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An MLflow model saved where another pandas minor was installed (the issue's pandas 2.3.3 against 3.x)."""
    mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
    directory = tmp_path_factory.mktemp("mlflow-old") / "model"
    with warnings.catch_warnings():  # MLflow's notices, and pandas' about how MLflow handles the example
        warnings.simplefilter("ignore")
        mlflow_sklearn.save_model(
            LogisticRegression().fit(FRAME, [0, 0, 1, 1]),
            directory,
            input_example=FRAME.head(2),
            pip_requirements=[f"scikit-learn=={sklearn.__version__}", "pandas==1.5.3"],
        )
    return directory


def test_a_package_mismatch_warns_and_serves(older_pandas_model: Path) -> None:
    with serving(older_pandas_model) as server:
        answer = httpx.post(f"{server.url}/invocations", json={"dataframe_records": [{"a": 4, "b": 3.5}]})
        assert answer.json() == {"predictions": [1]}
    assert f"pandas: the model needs 1.5.3, {pd.__version__} is installed" in server.stderr
    assert "WARNING" in server.stderr


def test_strict_requirements_refuses_a_package_mismatch(older_pandas_model: Path) -> None:
    code, stderr = failed_start(older_pandas_model, ["--strict-requirements"])
    assert code == 8
    assert "cannot be loaded here (strict requirements)" in stderr
    assert f"pandas: the model needs 1.5.3, {pd.__version__} is installed" in stderr


def test_model_info_shows_the_mismatch_as_a_warning(older_pandas_model: Path) -> None:
    from click.testing import CliRunner

    from legion.cli.main import cli

    result = CliRunner().invoke(cli, ["model", "info", str(older_pandas_model)])
    assert result.exit_code == 0, result.output
    assert "flavor: mlflow" in result.stdout
    assert f"warning: pandas: the model needs 1.5.3, {pd.__version__} is installed" in result.stderr


def test_a_mismatched_model_failing_its_input_example_is_refused_naming_the_mismatch(tmp_path: Path) -> None:
    mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")

    class Unlucky(mlflow_pyfunc.PythonModel):  # type: ignore[misc, name-defined]  # local: pickled by value
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.Series:
            if (model_input["a"] == 13).any():
                raise ValueError("thirteen")
            return model_input["a"] * 2

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        mlflow_pyfunc.save_model(
            tmp_path / "model", python_model=Unlucky(), input_example=FRAME.head(1), pip_requirements=["pandas==1.5.3"]
        )
    (tmp_path / "model" / "input_example.json").write_text('{"columns": ["a", "b"], "data": [[13, 0.5]]}')
    code, stderr = failed_start(tmp_path / "model")
    assert code == 8
    assert "endpoint 'default' fails on its input example" in stderr
    assert "thirteen" in stderr
    assert f"pandas: the model needs 1.5.3, {pd.__version__} is installed" in stderr

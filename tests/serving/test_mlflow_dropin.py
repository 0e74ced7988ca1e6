"""``legion serve`` takes an MLflow model directory as it is, answering like ``mlflow models serve``."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from pathlib import Path

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

"""``legion serve`` answers an MLflow model exactly as MLflow's own scoring server does.

Both servers run on the same model directories (scikit-learn with ``predict`` and with ``predict_proba``, with
and without a signature, and a custom ``python_function`` model) and get the same payloads in all four JSON
input formats; their ``predictions`` must be equal. MLflow's server is its scoring app
(``mlflow.pyfunc.scoring_server.app``, what ``mlflow models serve --env-manager local`` runs) under uvicorn on
127.0.0.1, port 0, its address read from its log.
"""

from __future__ import annotations

import os
import queue
import re
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import sklearn
from sklearn.linear_model import LogisticRegression

from tests.support.server import STARTUP_DEADLINE_S, ServerProcess, serving, wait_until

mlflow_sklearn = pytest.importorskip("mlflow.sklearn")
mlflow_pyfunc = pytest.importorskip("mlflow.pyfunc")

FRAME = pd.DataFrame({"a": [1, 2, 3, 4], "b": [0.5, 1.5, 2.5, 3.5]})
ROWS = [[1, 0.5], [4, 3.5], [2, 2.0]]
PAYLOADS = {
    "dataframe_split": {"dataframe_split": {"columns": ["a", "b"], "data": ROWS}},
    "dataframe_records": {"dataframe_records": [{"a": a, "b": b} for a, b in ROWS]},
    "instances": {"instances": [{"a": a, "b": b} for a, b in ROWS]},
    "inputs": {"inputs": {"a": [r[0] for r in ROWS], "b": [r[1] for r in ROWS]}},
}
# Without a signature MLflow takes ``instances`` and ``inputs`` as tensors: rows of values.
UNSIGNED_PAYLOADS = {**PAYLOADS, "instances": {"instances": ROWS}, "inputs": {"inputs": ROWS}}


def _signature() -> Any:
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    return ModelSignature(Schema([ColSpec("long", "a"), ColSpec("double", "b")]))


def _sklearn(predict_fn: str, signed: bool) -> Callable[[Path], None]:
    def save(directory: Path) -> None:
        mlflow_sklearn.save_model(
            LogisticRegression().fit(FRAME, [0, 0, 1, 1]),
            directory,
            signature=_signature() if signed else None,
            pyfunc_predict_fn=predict_fn,
            pip_requirements=[f"scikit-learn=={sklearn.__version__}"],
        )

    return save


def _custom(directory: Path) -> None:
    class Scaled(mlflow_pyfunc.PythonModel):  # type: ignore[misc, name-defined]  # defined here: pickled by value
        def predict(self, context: Any, model_input: pd.DataFrame, params: Any = None) -> pd.DataFrame:
            return pd.DataFrame({"twice": model_input["a"] * 2, "sum": model_input["a"] + model_input["b"]})

    mlflow_pyfunc.save_model(directory, python_model=Scaled(), signature=_signature(), pip_requirements=[])


MODELS = {
    "sklearn-predict": _sklearn("predict", signed=True),
    "sklearn-predict_proba": _sklearn("predict_proba", signed=True),
    "sklearn-predict_log_proba-unsigned": _sklearn("predict_log_proba", signed=False),
    "pyfunc-dataframe": _custom,
}


@contextmanager
def mlflow_scoring_server(model: Path) -> Iterator[str]:
    """MLflow's scoring app under uvicorn, as ``mlflow models serve --env-manager local`` runs it."""
    from mlflow.pyfunc import scoring_server

    env = {**os.environ, scoring_server._SERVER_MODEL_PATH: str(model)}
    command = [sys.executable, "-m", "uvicorn", "--host", "127.0.0.1", "--port", "0", "--no-access-log",
               "mlflow.pyfunc.scoring_server.app:app"]  # fmt: skip
    process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=env)
    lines: queue.Queue[str] = queue.Queue()
    seen: list[str] = []

    def pump() -> None:
        assert process.stderr is not None
        for line in process.stderr:
            seen.append(line)
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    try:
        url = ""
        end = time.monotonic() + STARTUP_DEADLINE_S
        while not url and time.monotonic() < end:
            try:
                found = re.search(r"running on (http://127\.0\.0\.1:\d+)", lines.get(timeout=0.1))
            except queue.Empty:
                assert process.poll() is None, "MLflow's scoring server exited:\n" + "".join(seen)
                continue
            url = found.group(1) if found else ""
        assert url, "MLflow's scoring server printed no address:\n" + "".join(seen)
        wait_until(lambda: httpx.get(f"{url}/ping", timeout=2).status_code == 200, STARTUP_DEADLINE_S, "MLflow's /ping")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        reader.join(timeout=5)
        if process.stderr is not None:
            process.stderr.close()


@pytest.fixture(scope="module", params=sorted(MODELS))
def both(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, ServerProcess, bool]]:
    directory = tmp_path_factory.mktemp("mlflow") / request.param
    with warnings.catch_warnings():  # MLflow's own notices about its defaults
        warnings.simplefilter("ignore")
        MODELS[request.param](directory)
    with mlflow_scoring_server(directory) as mlflow_url, serving(directory) as legion:
        yield mlflow_url, legion, "unsigned" not in request.param


@pytest.mark.parametrize("payload", sorted(PAYLOADS))
def test_legion_answers_as_mlflows_scoring_server(both: tuple[str, ServerProcess, bool], payload: str) -> None:
    mlflow_url, legion, signed = both
    body = (PAYLOADS if signed else UNSIGNED_PAYLOADS)[payload]
    theirs = httpx.post(f"{mlflow_url}/invocations", json=body, timeout=30)
    ours = httpx.post(f"{legion.url}/invocations", json=body, timeout=30)
    assert theirs.status_code == 200, theirs.text
    assert ours.status_code == 200, ours.text
    expected, got = theirs.json()["predictions"], ours.json()["predictions"]
    assert _close(got, expected), f"legion: {got}\nmlflow: {expected}"


def _close(got: Any, expected: Any) -> bool:
    if isinstance(expected, dict):
        return isinstance(got, dict) and got.keys() == expected.keys() and all(_close(got[k], expected[k]) for k in got)
    if isinstance(expected, list):
        return isinstance(got, list) and len(got) == len(expected) and all(map(_close, got, expected))
    if isinstance(expected, float):
        return isinstance(got, int | float) and bool(np.isclose(got, expected))
    return type(got) is type(expected) and got == expected

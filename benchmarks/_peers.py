"""The peers a Legion server is measured against: MLflow's and Seldon MLServer's model servers.

``benchmarks/serve.py --peers`` calls ``mlflow_target`` and ``mlserver_target``; each returns a ``Target`` that
starts the peer on loopback and knows its request body and the shape of its answer. The peers run from their
own virtual environments (``benchmarks/.venvs/<name>``, made once with uv) pinned to this environment's
scikit-learn, pandas, NumPy, SciPy and joblib, so the pipeline pickled here loads there.

Each peer is configured as its documentation suggests for serving, with one deviation that applies to every
server in the benchmarks: no access log line per request.

- MLflow: the fitted pipeline saved with ``mlflow.sklearn.save_model`` (a signature inferred from the request
  rows, ``pyfunc_predict_fn="predict_proba"``), served by ``mlflow models serve --env-manager local -w 1``
  and invoked with ``dataframe_split`` on ``/invocations``.
- MLServer: ``mlserver-sklearn`` on the joblib file with ``predict_fn: predict_proba``, MLServer's default
  of one parallel inference worker, invoked on OIP V2 ``/v2/models/census/infer`` with the pandas codec
  (``parameters: {content_type: pd}``, one input per column); optionally with adaptive batching.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pandas as pd
from _harness import HOST, WORK_DIR, Server, Target, ensure_venv, free_port, package_versions, start_server

PINNED = ("scikit-learn", "pandas", "numpy", "scipy", "joblib")
MLFLOW = "mlflow models serve"
MLSERVER = "mlserver"
MLSERVER_ADAPTIVE = "mlserver adaptive"
MAX_BATCH_SIZE = 32
MAX_BATCH_TIME_S = 0.005


def frame_rows(frame: pd.DataFrame) -> list[list[Any]]:
    """Rows of plain Python values, as a client would put them in JSON."""
    return [list(row) for row in zip(*(frame[c].tolist() for c in frame.columns), strict=True)]


def answer_shape(rows: Any) -> tuple[int, int]:
    """(rows, values per row) of a JSON list of rows."""
    return len(rows), len(rows[0]) if rows and isinstance(rows[0], list) else 1


def pins() -> list[str]:
    """``name==version`` of the packages the pickled pipeline needs, as installed here."""
    return [f"{name}=={version}" for name, version in package_versions(PINNED).items() if version]


def _on_path(bin_dir: Path) -> dict[str, str]:
    """The environment change that puts a peer's virtualenv first on PATH (peers exec their tools by name)."""
    return {"PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}


# --- MLflow --------------------------------------------------------------------------------------------


def mlflow_body(frame: pd.DataFrame) -> bytes:
    return orjson.dumps({"dataframe_split": {"columns": list(frame.columns), "data": frame_rows(frame)}})


def mlflow_answer(answer: Any) -> tuple[int, int]:
    return answer_shape(answer["predictions"])


_SAVE_MLFLOW = """\
import shutil, sys
import joblib, mlflow.sklearn, pandas as pd
from mlflow.models import infer_signature
pipeline, sample, output = joblib.load(sys.argv[1]), pd.read_pickle(sys.argv[2]), sys.argv[3]
shutil.rmtree(output, ignore_errors=True)
signature = infer_signature(sample, pipeline.predict_proba(sample))
mlflow.sklearn.save_model(pipeline, output, signature=signature, pyfunc_predict_fn="predict_proba")
"""


def mlflow_target(joblib_path: Path, sample: pd.DataFrame, *, width: int, deadline_s: float) -> Target:
    """``mlflow models serve`` of the pipeline in ``joblib_path``; ``sample`` gives the model its signature."""
    python = ensure_venv("mlflow", ["mlflow", *pins()])
    work = WORK_DIR / "mlflow"
    work.mkdir(parents=True, exist_ok=True)
    sample_path = work / "sample.pkl"
    sample.to_pickle(sample_path)
    model = work / "model"
    subprocess.run(
        [str(python), "-c", _SAVE_MLFLOW, str(joblib_path), str(sample_path), str(model)],
        check=True, timeout=300, cwd=work, capture_output=True,
    )  # fmt: skip
    bin_dir = python.parent

    def start() -> Server:
        port = free_port()  # mlflow passes no --port to uvicorn when given 0, so it cannot bind port 0
        argv = [str(bin_dir / "mlflow"), "models", "serve", "-m", str(model), "--env-manager", "local",
                "-h", HOST, "-p", str(port), "-w", "1"]  # fmt: skip
        # mlflow execs `uvicorn` from PATH; uvicorn's CLI reads UVICORN_* variables.
        env = {**_on_path(bin_dir), "UVICORN_ACCESS_LOG": "false"}
        return start_server("mlflow", argv, ready_path="/ping", port=port, env=env, cwd=work, deadline_s=deadline_s)

    versions = package_versions(["mlflow", "uvicorn", "fastapi", "uvloop", "httptools", *PINNED], python)
    setup = "mlflow models serve --env-manager local -w 1 (uvicorn, access log off); sklearn flavor, predict_proba"
    return Target(MLFLOW, "/invocations", start, mlflow_body, mlflow_answer, width, setup, versions)


# --- MLServer ------------------------------------------------------------------------------------------


def _oip_datatype(series: pd.Series) -> str:
    return {"i": "INT64", "u": "UINT64", "f": "FP64", "b": "BOOL"}.get(series.dtype.kind, "BYTES")


def mlserver_body(frame: pd.DataFrame) -> bytes:
    inputs = [
        {"name": str(c), "shape": [len(frame)], "datatype": _oip_datatype(frame[c]), "data": frame[c].tolist()}
        for c in frame.columns
    ]
    return orjson.dumps({"parameters": {"content_type": "pd"}, "inputs": inputs})


def mlserver_answer(answer: Any) -> tuple[int, int]:
    shape = answer["outputs"][0]["shape"]
    return int(shape[0]), int(shape[1]) if len(shape) > 1 else 1


def mlserver_target(joblib_path: Path, *, width: int, deadline_s: float, adaptive: bool) -> Target:
    """MLServer with ``mlserver-sklearn`` serving ``joblib_path`` as model ``census``."""
    # uvloop 0.22 kills MLServer 1.7's inference workers at start (SeldonIO/MLServer#2286): keep the last good one.
    python = ensure_venv("mlserver", ["mlserver", "mlserver-sklearn", "uvloop<0.22", *pins()])
    name = "mlserver-adaptive" if adaptive else "mlserver"
    repository = WORK_DIR / name
    (repository / "census").mkdir(parents=True, exist_ok=True)
    shutil.copy2(joblib_path, repository / "census" / "model.joblib")
    model_settings: dict[str, Any] = {
        "name": "census",
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib", "version": "v1", "extra": {"predict_fn": "predict_proba"}},
    }
    if adaptive:
        model_settings |= {"max_batch_size": MAX_BATCH_SIZE, "max_batch_time": MAX_BATCH_TIME_S}
    (repository / "census" / "model-settings.json").write_text(json.dumps(model_settings, indent=2))
    bin_dir = python.parent

    def start() -> Server:
        # MLServer's defaults (one parallel inference worker, metrics on), bound to loopback, access log off.
        server_settings = {
            "host": HOST, "http_port": free_port(), "grpc_port": free_port(), "metrics_port": free_port(),
            "debug": False, "parallel_workers": 1,
        }  # fmt: skip
        (repository / "settings.json").write_text(json.dumps(server_settings, indent=2))
        return start_server(
            name, [str(bin_dir / "mlserver"), "start", str(repository)], ready_path="/v2/models/census/ready",
            port=server_settings["http_port"], env=_on_path(bin_dir), cwd=repository, deadline_s=deadline_s,
        )  # fmt: skip

    versions = package_versions(["mlserver", "mlserver-sklearn", "uvicorn", "fastapi", "uvloop", *PINNED], python)
    setup = f"mlserver start: parallel_workers 1, debug off, metrics on; model settings {json.dumps(model_settings)}"
    label = MLSERVER_ADAPTIVE if adaptive else MLSERVER
    return Target(label, "/v2/models/census/infer", start, mlserver_body, mlserver_answer, width, setup, versions)

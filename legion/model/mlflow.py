"""MLflow models taken as they are: a directory with an ``MLmodel`` file (sklearn or pyfunc flavor).

A ``sklearn`` flavor is unpickled directly, so serving it needs neither MLflow nor its dependencies; any other
``python_function`` model is loaded through ``mlflow.pyfunc`` when MLflow is installed (``legion[mlflow]``). The
MLflow signature becomes the endpoint's columns; without a signature the endpoint is untyped-by-DataFrame. The
pyfunc flavor's ``predict_fn`` (``pyfunc_predict_fn="predict_proba"`` at save time) is the method called, as
``mlflow models serve`` calls it. Requirements come from the model's ``requirements.txt`` and Python from
``python_env.yaml``; the saved input example (``input_example.json``) is what the smoke prediction runs on.
"""

from __future__ import annotations

import json
import pickle
import re
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np
import yaml

from legion.core.errors import ModelFormatError
from legion.model import requirements
from legion.model.endpoints import Endpoint, TypedEndpoint
from legion.model.loader import LoadedModel, likely_cause, refuse_if_strict
from legion.model.manifest import ColumnSpec, EndpointSpec, Example, Manifest, Provenance
from legion.model.table import Table

# MLflow column-spec types -> Legion column types.
_TYPES = {
    "long": "int64",
    "integer": "int32",
    "double": "float64",
    "float": "float32",
    "string": "string",
    "boolean": "boolean",
    "binary": "image",
    "datetime": "string",
}
_PIN = re.compile(r"^\s*([A-Za-z0-9_.\-\[\]]+)\s*==\s*([^\s;#]+)")


def _read_mlmodel(directory: Path) -> dict[str, Any]:
    try:
        raw = yaml.safe_load((directory / "MLmodel").read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ModelFormatError(f"{directory / 'MLmodel'} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict) or "flavors" not in raw:
        raise ModelFormatError(f"{directory / 'MLmodel'} has no flavors")
    return raw


def _columns(mlmodel: dict[str, Any]) -> list[ColumnSpec] | None:
    inputs = (mlmodel.get("signature") or {}).get("inputs")
    if not inputs:
        return None
    specs = json.loads(inputs) if isinstance(inputs, str) else inputs
    columns = []
    for index, spec in enumerate(specs):
        kind = _TYPES.get(spec.get("type", ""))
        if kind is None or "name" not in spec:
            return None  # tensor or "any" signatures name no typed columns: take what the caller sends
        columns.append(
            ColumnSpec(name=spec.get("name", str(index)), type=kind, nullable=not spec.get("required", True))
        )
    return columns


def _pins(directory: Path) -> dict[str, str]:
    path = directory / "requirements.txt"
    if not path.exists():
        return {}
    pins = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            pins[match.group(1).split("[")[0]] = match.group(2)
    return pins


def _python(directory: Path) -> str:
    env = directory / "python_env.yaml"
    if env.exists():
        data = yaml.safe_load(env.read_text(encoding="utf-8")) or {}
        if data.get("python"):
            return str(data["python"])
    return requirements.python_version()


def load_mlflow(directory: Path, *, strict: bool = False) -> LoadedModel:
    """Load an MLflow model directory; version differences warn unless ``strict`` (see ``legion.model.loader``)."""
    mlmodel = _read_mlmodel(directory)
    flavors: dict[str, Any] = mlmodel["flavors"]
    python = _python(directory)
    uses_sklearn = "sklearn" in flavors
    # a sklearn-flavored model is unpickled without MLflow, so MLflow's own pin does not apply to it
    pins = {k: v for k, v in _pins(directory).items() if not uses_sklearn or k not in ("mlflow", "mlflow-skinny")}
    problems, warnings = requirements.check(python, pins)
    refuse_if_strict(f"MLflow model {directory}", problems, strict)
    columns = _columns(mlmodel)
    # What MLflow's pyfunc flavor calls: ``predict`` unless the model was saved with another ``predict_fn``.
    predict_fn = str((flavors.get("python_function") or {}).get("predict_fn") or "predict")
    with likely_cause(problems):
        if uses_sklearn:
            estimator = _load_sklearn(directory, flavors["sklearn"])
            call = getattr(estimator, predict_fn, None)
            if not callable(call):
                raise ModelFormatError(f"MLflow model {directory}: {type(estimator).__name__} has no {predict_fn}()")
            flavor_note = "sklearn"
        elif "python_function" in flavors:
            call = _load_pyfunc(directory).predict  # MLflow's own loader honours predict_fn
            flavor_note = "python_function"
        else:
            raise ModelFormatError(f"MLflow model {directory} has no sklearn or python_function flavor")
    name = str(mlmodel.get("metadata", {}).get("name") or directory.resolve().name)
    version = str(mlmodel.get("metadata", {}).get("version") or mlmodel.get("run_id") or "1")
    spec = EndpointSpec(
        artifact=f"MLmodel#{flavor_note}", columns=columns, method=predict_fn, example=_example(directory, mlmodel)
    )
    manifest = Manifest(
        name=name,
        version=version,
        flavor="mlflow",
        python=python,
        requirements=pins,
        endpoints={"default": spec},
        provenance=Provenance(created_at=str(mlmodel.get("utc_time_created") or datetime.now(UTC).isoformat())),
    )
    endpoint: Endpoint = TypedEndpoint("default", spec, call) if columns else _Framed(spec, call)
    return LoadedModel(
        manifest=manifest,
        endpoints={"default": endpoint},
        path=directory,
        warnings=problems + warnings,
        mismatches=problems,
    )


def _example(directory: Path, mlmodel: dict[str, Any]) -> Example | None:
    """The model's input example when MLflow saved it as a DataFrame in ``split`` orient (its default)."""
    info = mlmodel.get("saved_input_example_info") or {}
    if info.get("type", "dataframe") != "dataframe" or info.get("pandas_orient", "split") != "split":
        return None
    try:
        data = json.loads((directory / str(info.get("artifact_path", "input_example.json"))).read_text("utf-8"))
        return Example(columns=[str(c) for c in data["columns"]], data=data["data"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # no usable example: nothing to try the model on


class _Framed(TypedEndpoint):
    """An MLflow model without a signature: any columns the caller sends go to the model as they are."""

    def __init__(self, spec: EndpointSpec, call: Callable[[Any], Any]) -> None:
        super().__init__("default", spec, call)

    def model_input(self, table: Table) -> Any:
        """Rows without column names (``instances`` of lists) go as a 2-D array, as MLflow's server sends them."""
        if table.layout == "matrix":
            return np.column_stack(table.arrays)
        return table.to_frame()


def _load_sklearn(directory: Path, flavor: dict[str, Any]) -> Any:
    path = directory / str(flavor.get("pickled_model", "model.pkl"))
    serialization = flavor.get("serialization_format", "cloudpickle")
    try:
        if serialization == "skops":
            return _load_skops(path, flavor.get("skops_trusted_types") or [])
        data = path.read_bytes()
        if serialization == "pickle":
            return pickle.loads(data)  # the user asked us to serve this model
        return cloudpickle.loads(data)
    except ModelFormatError:
        raise
    except FileNotFoundError:
        raise ModelFormatError(f"MLflow model {directory}: {path.name} is missing") from None
    except Exception as exc:
        raise ModelFormatError(f"MLflow model {directory}: cannot load {path.name}: {exc}") from exc


def _load_skops(path: Path, trusted: list[str]) -> Any:
    """MLflow 3 saves scikit-learn models with skops; only the types MLflow recorded as trusted are loaded."""
    try:
        import skops.io  # noqa: PLC0415  # optional dependency, only for skops-serialized models
    except ImportError:
        raise ModelFormatError(f"{path} is saved with skops; install legion[mlflow] to serve it") from None
    untrusted = [t for t in skops.io.get_untrusted_types(file=path) if t not in trusted]
    if untrusted:
        raise ModelFormatError(f"{path} holds types MLflow did not mark as trusted", problems=untrusted)
    return skops.io.load(path, trusted=trusted or None)


def _load_pyfunc(directory: Path) -> Any:
    try:
        import mlflow.pyfunc  # noqa: PLC0415  # optional dependency, only for pyfunc models
    except ImportError:
        raise ModelFormatError(
            f"MLflow model {directory} is a python_function model; install legion[mlflow] to serve it"
        ) from None
    try:
        return mlflow.pyfunc.load_model(str(directory))
    except Exception as exc:
        raise ModelFormatError(f"MLflow could not load {directory}: {type(exc).__name__}: {exc}") from exc

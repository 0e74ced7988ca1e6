"""``ModelBuilder``: describe a model's endpoints, then save it in Legion's model format.

The module-level SDK (``legion.model.init``, ``export_df``, ...) drives one default builder, the shape Legion
users know; code that builds several models at once uses ``ModelBuilder`` directly::

    builder = ModelBuilder("census", "1.0")
    builder.export_sklearn(pipeline, sample_dataframe=X.head(50))
    builder.save("model/")

Each export runs the function once on the sample (when there is one) so that a broken function fails here, at
training time, and not in production; the output it gives is recorded as the endpoint's output signature.
"""

from __future__ import annotations

import math
import shutil
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cloudpickle
import pandas as pd

from legion.core.dtypes import COLUMN_TYPES, column_type_of
from legion.core.errors import ConflictError, InvalidInputError, LegionError
from legion.model import properties, requirements
from legion.model.endpoints import Raw, accepts_argument, to_table
from legion.model.manifest import MANIFEST_NAME, ColumnSpec, EndpointSpec, Example, Flavor, Manifest, Provenance
from legion.model.table import Table

Function = Callable[[Any], Any]
# Always pinned for a model whose endpoints take DataFrames, whatever the pickles reference.
_BASE_MODULES = ("numpy", "pandas", "cloudpickle")


@dataclass(slots=True)
class _Pending:
    spec: EndpointSpec
    payload: object  # what is pickled into the artifact


def columns_of(sample: pd.DataFrame) -> list[ColumnSpec]:
    """The typed signature of a sample DataFrame; a column with missing values is nullable."""
    if not isinstance(sample, pd.DataFrame) or sample.empty:
        raise InvalidInputError("sample_dataframe must be a non-empty pandas DataFrame")
    specs = []
    for column in sample.columns:
        series = sample[column]
        kind = column_type_of(series.dtype, series.head(20).tolist())
        specs.append(ColumnSpec(name=str(column), type=kind, nullable=bool(series.isna().any())))
    return specs


def example_of(sample: pd.DataFrame) -> Example | None:
    """The sample's first row, when every value is plain JSON (images and the like are left out)."""
    row = sample.head(1).astype(object).to_numpy().tolist()[0]
    row = [None if isinstance(v, float) and math.isnan(v) else v for v in row]  # NaN -> null
    if not all(v is None or isinstance(v, str | int | float | bool) for v in row):
        return None
    return Example(columns=[str(c) for c in sample.columns], data=[row])


def _output_of(result: Table | Raw) -> list[ColumnSpec] | None:
    if isinstance(result, Raw):
        return None
    return [
        ColumnSpec(name=name, type=column_type_of(array.dtype, array[:20].tolist()))
        for name, array in zip(result.columns, result.arrays, strict=True)
    ]


def _by_value(*objects: object) -> None:
    """Pickle the code of modules that will not be importable where the model is served (scripts, examples)."""
    for obj in objects:
        module_name = getattr(obj, "__module__", None) or getattr(type(obj), "__module__", None)
        if module_name and module_name != "__main__" and not requirements.is_installed_module(module_name):
            module = sys.modules.get(module_name)
            if module is not None:
                cloudpickle.register_pickle_by_value(module)


class ModelBuilder:
    """Collects endpoints, properties and metrics of one model version, then ``save``s it."""

    def __init__(self, name: str, version: str) -> None:
        if not name or not str(version):
            raise InvalidInputError("a model needs a non-empty name and version")
        self.name = name
        self.version = str(version)
        self.flavor: Flavor = "python_function"
        self.metrics: dict[str, float] = {}
        self.properties: dict[str, Any] = {}
        self.artifacts: dict[str, Path] = {}
        self._endpoints: dict[str, _Pending] = {}

    # --- Legion's classic export calls -------------------------------------------------------------------
    def export_df(
        self,
        apply_func: Function,
        sample_dataframe: pd.DataFrame,
        prepare_func: Function | None = None,
        endpoint: str = "default",
        description: str = "",
    ) -> None:
        """Export a function of a DataFrame; the column types are read from ``sample_dataframe``."""
        columns = columns_of(sample_dataframe)
        result = self._try(endpoint, apply_func, prepare_func, sample_dataframe)
        spec = EndpointSpec(
            artifact=f"endpoints/{endpoint}.pkl",
            columns=columns,
            output=_output_of(result),
            description=description,
            example=example_of(sample_dataframe),
        )
        self._add(endpoint, spec, (apply_func, prepare_func))

    def export(
        self,
        apply_func: Function,
        column_types: Mapping[str, str],
        prepare_func: Function | None = None,
        endpoint: str = "default",
        description: str = "",
    ) -> None:
        """Export a function of a DataFrame whose columns are given explicitly, e.g. ``{"a": "int64"}``."""
        bad = {name: f"unknown type {kind!r}" for name, kind in column_types.items() if kind not in COLUMN_TYPES}
        if bad or not column_types:
            raise InvalidInputError.for_fields(bad or {"column_types": "empty"}, prefix="cannot export")
        columns = [ColumnSpec(name=n, type=t) for n, t in column_types.items()]
        spec = EndpointSpec(artifact=f"endpoints/{endpoint}.pkl", columns=columns, description=description)
        self._add(endpoint, spec, (apply_func, prepare_func))

    def export_untyped(
        self,
        apply_func: Function,
        prepare_func: Function | None = None,
        endpoint: str = "default",
        description: str = "",
    ) -> None:
        """Export a function that takes the request's parameters as a dict and returns any JSON value."""
        spec = EndpointSpec(artifact=f"endpoints/{endpoint}.pkl", uses_data_frame=False, description=description)
        self._add(endpoint, spec, (apply_func, prepare_func))

    # --- modern forms ------------------------------------------------------------------------------------
    def export_sklearn(
        self,
        estimator: Any,
        sample_dataframe: pd.DataFrame,
        endpoint: str = "default",
        method: str = "predict",
        proba_endpoint: str | None = "predict_proba",
    ) -> None:
        """Export a fitted scikit-learn estimator or pipeline: ``method`` on ``endpoint``, and
        ``predict_proba`` on its own endpoint when the estimator has one."""
        self.flavor = "sklearn"
        columns = columns_of(sample_dataframe)
        methods = {endpoint: method}
        if proba_endpoint and hasattr(estimator, "predict_proba") and method != "predict_proba":
            methods[proba_endpoint] = "predict_proba"
        for name, method_name in methods.items():
            call = getattr(estimator, method_name, None)
            if call is None:
                raise InvalidInputError(f"{type(estimator).__name__} has no method {method_name!r}")
            result = self._try(name, call, None, sample_dataframe)
            if method_name == "predict_proba" and isinstance(result, Table):
                labels = tuple(str(c) for c in getattr(estimator, "classes_", range(len(result.columns))))
                result = Table(labels, result.arrays)
            spec = EndpointSpec(
                artifact="model.pkl",
                columns=columns,
                output=_output_of(result),
                method=method_name,
                example=example_of(sample_dataframe),
            )
            self._add(name, spec, estimator)

    def export_class(
        self,
        instance: Any,
        sample_dataframe: pd.DataFrame | None = None,
        column_types: Mapping[str, str] | None = None,
        endpoint: str = "default",
        artifacts: Mapping[str, str | Path] | None = None,
    ) -> None:
        """Export an object with ``load()`` (or ``load(artifacts)``) and ``predict(df)``.

        ``load`` runs once where the model is served, with ``artifacts`` mapped to their copied paths.
        """
        if not callable(getattr(instance, "predict", None)):
            raise InvalidInputError(f"{type(instance).__name__} has no predict method")
        self.flavor = "python_class"
        for key, source in (artifacts or {}).items():
            path = Path(source)
            if not path.exists():
                raise InvalidInputError.for_fields({key: f"{path} does not exist"}, prefix="cannot export artifacts")
            self.artifacts[key] = path
        if sample_dataframe is not None:
            columns: list[ColumnSpec] | None = columns_of(sample_dataframe)
        elif column_types:
            columns = [ColumnSpec(name=n, type=t) for n, t in column_types.items()]
        else:
            columns = None
        output = None
        if sample_dataframe is not None:
            trial = cloudpickle.loads(cloudpickle.dumps(instance))  # load a copy, keep the exported one pristine
            load = getattr(trial, "load", None)
            if callable(load):
                load(dict(self.artifacts)) if accepts_argument(load) else load()
            output = _output_of(self._try(endpoint, trial.predict, None, sample_dataframe))
        spec = EndpointSpec(
            artifact=f"endpoints/{endpoint}.pkl", columns=columns, output=output, method="predict",
            uses_data_frame=columns is not None,
        )  # fmt: skip
        self._add(endpoint, spec, instance)

    # --- properties, metrics, save -----------------------------------------------------------------------
    def define_property(self, name: str, initial: Any) -> None:
        self.properties[name] = initial
        properties.define_property(name, initial)

    def send_metric(self, name: str, value: float) -> None:
        self.metrics[name] = float(value)

    def save(self, path: str | Path, *, training_id: str | None = None, git_commit: str | None = None) -> Path:
        """Write the model as a directory, or as one ``.zip`` when ``path`` ends in ``.zip``."""
        if not self._endpoints:
            raise InvalidInputError("nothing to save: export at least one endpoint first")
        target = Path(path)
        with tempfile.TemporaryDirectory(prefix="legion-save-") as tmp:
            staging = Path(tmp) / "model"
            self._write(staging, training_id, git_commit)
            if target.suffix == ".zip":
                target.parent.mkdir(parents=True, exist_ok=True)
                with zipfile.ZipFile(target, "w", zipfile.ZIP_DEFLATED) as archive:
                    for file in sorted(staging.rglob("*")):
                        if file.is_file():
                            archive.write(file, file.relative_to(staging).as_posix())
                return target
            _replace_dir(staging, target)
        return target

    def _write(self, directory: Path, training_id: str | None, git_commit: str | None) -> None:
        directory.mkdir(parents=True)
        written: dict[str, bytes] = {}
        for pending in self._endpoints.values():
            artifact = pending.spec.artifact
            if artifact not in written:
                written[artifact] = cloudpickle.dumps(pending.payload, protocol=5)
                (directory / artifact).parent.mkdir(parents=True, exist_ok=True)
                (directory / artifact).write_bytes(written[artifact])
        stored_artifacts: dict[str, str] = {}
        for key, source in self.artifacts.items():
            relative = f"artifacts/{key}{''.join(source.suffixes) if source.is_file() else ''}"
            if source.is_dir():
                shutil.copytree(source, directory / relative)
            else:
                (directory / relative).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, directory / relative)
            stored_artifacts[key] = relative
        modules = set(_BASE_MODULES)
        for data in written.values():
            modules |= requirements.modules_in_pickle(data)
        manifest = Manifest(
            name=self.name,
            version=self.version,
            flavor=self.flavor,
            python=requirements.python_version(),
            requirements=requirements.pins_for(modules),
            endpoints={name: p.spec for name, p in self._endpoints.items()},
            metrics=self.metrics,
            properties=self.properties,
            provenance=Provenance(
                training_id=training_id, git_commit=git_commit, created_at=datetime.now(UTC).isoformat()
            ),
            artifacts=stored_artifacts,
        )
        (directory / MANIFEST_NAME).write_text(manifest.to_yaml(), encoding="utf-8")

    def _add(self, endpoint: str, spec: EndpointSpec, payload: object) -> None:
        if not endpoint or "/" in endpoint:
            raise InvalidInputError(f"invalid endpoint name {endpoint!r}")
        items = payload if isinstance(payload, tuple) else (payload,)
        _by_value(*[p for p in items if p is not None])
        self._endpoints[endpoint] = _Pending(spec, payload)

    def _try(self, endpoint: str, call: Function, prepare: Function | None, sample: pd.DataFrame) -> Table | Raw:
        try:
            result = call(prepare(sample) if prepare is not None else sample)
        except LegionError:
            raise
        except Exception as exc:
            raise InvalidInputError(
                f"endpoint {endpoint!r} failed on the sample data frame: {type(exc).__name__}: {exc}"
            ) from exc
        return to_table(result, len(sample))


def _replace_dir(staging: Path, target: Path) -> None:
    if target.exists():
        if not target.is_dir():
            raise ConflictError(f"{target} exists and is not a directory")
        if any(target.iterdir()) and not (target / MANIFEST_NAME).exists():
            raise ConflictError(f"{target} is not empty and holds no Legion model; refusing to overwrite it")
        # Emptied rather than removed: in a sandboxed training the output directory is a mount point.
        for child in target.iterdir():
            if child.is_dir() and not child.is_symlink():
                shutil.rmtree(child)
            else:
                child.unlink()
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(staging, target, dirs_exist_ok=True)

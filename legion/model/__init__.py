"""The model SDK and the on-disk model format.

What a data scientist imports in a training script, in Legion's classic shape::

    import legion.model
    legion.model.init("census", "1.0")
    legion.model.export_df(apply_func, sample_dataframe)      # or export(...), export_untyped(...)
    legion.model.send_metric("accuracy", 0.85)
    legion.model.save("model/")                              # a directory, or "model.zip"

and the modern forms: ``export_sklearn(pipeline, sample_df)``, ``export_class(obj)`` for an object with
``load``/``predict``, and ``load_model(path)`` that also takes an MLflow model directory as it is.

This package owns the SDK, the manifest, saving and loading. It imports only ``legion.core``; nothing here
knows about HTTP (that is ``legion.serving``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd

from legion.core.errors import InvalidInputError
from legion.model.builder import ModelBuilder
from legion.model.endpoints import Endpoint, Raw, TypedEndpoint, UntypedEndpoint
from legion.model.loader import LoadedModel, load_model
from legion.model.manifest import MANIFEST_NAME, PACKAGE_MANIFEST_NAME, ColumnSpec, EndpointSpec, Manifest
from legion.model.metrics import send_metric as _record_metric
from legion.model.properties import get_property
from legion.model.table import Table

__all__ = [
    "MANIFEST_NAME",
    "PACKAGE_MANIFEST_NAME",
    "ColumnSpec",
    "Endpoint",
    "EndpointSpec",
    "LoadedModel",
    "Manifest",
    "ModelBuilder",
    "Raw",
    "Table",
    "TypedEndpoint",
    "UntypedEndpoint",
    "define_property",
    "export",
    "export_class",
    "export_df",
    "export_sklearn",
    "export_untyped",
    "get_property",
    "init",
    "load_model",
    "save",
    "send_metric",
]

_current: ModelBuilder | None = None


def _builder() -> ModelBuilder:
    if _current is None:
        raise InvalidInputError("call legion.model.init(name, version) first")
    return _current


def init(name: str, version: str) -> ModelBuilder:
    """Start describing a model; later calls of this module add to it. Returns the builder."""
    global _current  # noqa: PLW0603  # Legion's classic SDK is module-level by design
    _current = ModelBuilder(name, str(version))
    return _current


def export_df(
    apply_func: Callable[[Any], Any],
    sample_dataframe: pd.DataFrame,
    prepare_func: Callable[[Any], Any] | None = None,
    endpoint: str = "default",
) -> None:
    """Export ``apply_func(df)``; column types are read from ``sample_dataframe``."""
    _builder().export_df(apply_func, sample_dataframe, prepare_func, endpoint)


def export(
    apply_func: Callable[[Any], Any],
    column_types: Mapping[str, str],
    prepare_func: Callable[[Any], Any] | None = None,
    endpoint: str = "default",
) -> None:
    """Export ``apply_func(df)`` with explicit column types (``int8`` ... ``uint64``, ``float32/64``, ...)."""
    _builder().export(apply_func, column_types, prepare_func, endpoint)


def export_untyped(
    apply_func: Callable[[Any], Any],
    prepare_func: Callable[[Any], Any] | None = None,
    endpoint: str = "default",
) -> None:
    """Export ``apply_func(params: dict) -> JSON`` without a signature."""
    _builder().export_untyped(apply_func, prepare_func, endpoint)


def export_sklearn(estimator: Any, sample_dataframe: pd.DataFrame, endpoint: str = "default") -> None:
    """Export a fitted scikit-learn estimator or pipeline (``predict``, and ``predict_proba`` if it has one)."""
    _builder().export_sklearn(estimator, sample_dataframe, endpoint)


def export_class(instance: Any, sample_dataframe: pd.DataFrame | None = None, endpoint: str = "default") -> None:
    """Export an object with ``load()`` and ``predict(df)``."""
    _builder().export_class(instance, sample_dataframe, endpoint=endpoint)


def define_property(name: str, initial: Any) -> None:
    """Declare a runtime-tunable property; read it in the model with ``get_property(name)``."""
    _builder().define_property(name, initial)


def send_metric(name: str, value: float) -> None:
    """Record a training metric: kept in the manifest, and reported to the trainer when one runs the script."""
    if _current is not None:
        _current.send_metric(name, value)
    _record_metric(name, value)


def save(path: str | Path) -> Path:
    """Save the model described since ``init`` as a directory or a ``.zip``."""
    from legion.model.metrics import TrainingSettings  # noqa: PLC0415  # read the environment at call time

    settings = TrainingSettings()
    return _builder().save(path, training_id=settings.training_id, git_commit=settings.git_commit)

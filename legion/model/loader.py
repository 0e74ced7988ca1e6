"""``load_model``: read a saved model (Legion directory, ``.zip`` or MLflow directory) into callable endpoints.

Loading checks the manifest, the format version, the Python version and every pinned package before it
unpickles anything, and reports every mismatch at once (``ModelFormatError.problems``). Callers: the model
server at start-up, ``legion model test`` and ``legion model info``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle

from legion.core.errors import ModelFormatError, NotFoundError
from legion.model import properties, requirements
from legion.model.endpoints import Endpoint, TypedEndpoint, UntypedEndpoint, accepts_argument
from legion.model.manifest import MANIFEST_NAME, PACKAGE_MANIFEST_NAME, EndpointSpec, Manifest

log = logging.getLogger(__name__)


@dataclass(slots=True, weakref_slot=True)
class LoadedModel:
    """A model ready to predict: its manifest and one ``Endpoint`` per name."""

    manifest: Manifest
    endpoints: dict[str, Endpoint]
    path: Path
    warnings: list[str] = field(default_factory=list)
    _cleanup: weakref.finalize | None = None  # type: ignore[type-arg]  # removes an extracted zip

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def endpoint(self, name: str | None) -> Endpoint:
        """The endpoint called ``name`` (``default``, or the only one, when None)."""
        if name is None:
            name = "default" if "default" in self.endpoints or len(self.endpoints) != 1 else next(iter(self.endpoints))
        try:
            return self.endpoints[name]
        except KeyError:
            valid = ", ".join(sorted(self.endpoints))
            raise NotFoundError(f"model {self.name!r} has no endpoint {name!r}; valid endpoints: {valid}") from None

    def unload(self) -> None:
        if self._cleanup is not None:
            self._cleanup()


def load_model(
    path: str | Path, *, check_versions: bool = True, property_values: Mapping[str, Any] | None = None
) -> LoadedModel:
    """Load a model directory or ``.zip``; an MLflow model directory (``MLmodel``) is taken as it is.

    >>> model = load_model("examples/summation/build/model")
    >>> model.endpoint("default").call({"a": 1, "b": 2})
    """
    source = Path(path)
    if (source / PACKAGE_MANIFEST_NAME).is_file():  # a local package: the model is inside
        source = source / "model"
    extracted: Path | None = None
    if source.is_file() and zipfile.is_zipfile(source):
        extracted = Path(tempfile.mkdtemp(prefix="legion-model-"))
        directory = extracted
    elif source.is_dir():
        directory = source
    else:
        raise ModelFormatError(f"{source} is neither a model directory nor a .zip of one")
    try:
        if extracted is not None:
            _extract(source, extracted)
        if not (directory / MANIFEST_NAME).exists() and (directory / "MLmodel").exists():
            from legion.model.mlflow import load_mlflow  # noqa: PLC0415  # only MLflow models need it

            model = load_mlflow(directory, check_versions=check_versions)
        else:
            model = _load_legion(directory, check_versions)
    except BaseException:
        if extracted is not None:
            shutil.rmtree(extracted, ignore_errors=True)
        raise
    model.path = source
    if extracted is not None:
        model._cleanup = weakref.finalize(model, shutil.rmtree, extracted, ignore_errors=True)
    properties.reset_properties(model.manifest.properties)
    if property_values:
        properties.update_properties(property_values)
    for warning in model.warnings:
        log.warning("model %s:%s: %s", model.name, model.version, warning)
    return model


def _extract(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.namelist():
            target = (into / member).resolve()
            if not target.is_relative_to(into.resolve()):
                raise ModelFormatError(f"{archive} holds a path outside the model: {member}")
        zipped.extractall(into)


def _load_legion(directory: Path, check_versions: bool) -> LoadedModel:
    manifest = Manifest.read(directory)
    problems, warnings = requirements.check(manifest.python, manifest.requirements)
    missing = [
        f"endpoint {name}: artifact {spec.artifact} is missing"
        for name, spec in manifest.endpoints.items()
        if not (directory / spec.artifact).is_file()
    ]
    if missing or (problems and check_versions):
        raise ModelFormatError(
            f"model {manifest.name}:{manifest.version} cannot be loaded here", problems=missing + problems
        )
    warnings = problems + warnings if not check_versions else warnings
    artifacts = {key: directory / relative for key, relative in manifest.artifacts.items()}
    loaded: dict[str, Any] = {}
    endpoints: dict[str, Endpoint] = {}
    for name, spec in manifest.endpoints.items():
        if spec.artifact not in loaded:
            payload = _unpickle(directory / spec.artifact, name)
            if manifest.flavor == "python_class":
                _call_load(payload, artifacts, name)
            loaded[spec.artifact] = payload
        endpoints[name] = _endpoint(name, spec, loaded[spec.artifact])
    return LoadedModel(manifest=manifest, endpoints=endpoints, path=directory, warnings=warnings)


def _unpickle(path: Path, endpoint: str) -> Any:
    try:
        return cloudpickle.loads(path.read_bytes())
    except Exception as exc:
        raise ModelFormatError(
            f"endpoint {endpoint}: cannot unpickle {path.name}: {type(exc).__name__}: {exc}"
        ) from exc


def _call_load(instance: Any, artifacts: dict[str, Path], endpoint: str) -> None:
    load = getattr(instance, "load", None)
    if not callable(load):
        return
    try:
        load(artifacts) if accepts_argument(load) else load()
    except Exception as exc:
        raise ModelFormatError(f"endpoint {endpoint}: load() raised {type(exc).__name__}: {exc}") from exc


def _endpoint(name: str, spec: EndpointSpec, payload: Any) -> Endpoint:
    if spec.method is not None:
        call = getattr(payload, spec.method)
        prepare = None
    else:
        call, prepare = payload
    if spec.columns is None:
        return UntypedEndpoint(name, spec, call, prepare)
    return TypedEndpoint(name, spec, call, prepare)

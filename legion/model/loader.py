"""``load_model``: read a saved model (Legion directory, ``.zip`` or MLflow directory) into callable endpoints.

Loading checks the manifest, the format version, the Python version and every pinned package before it
unpickles anything. As ``mlflow models serve`` does, a version that differs from the model's is a warning (logged,
and kept in ``LoadedModel.warnings`` for ``legion model info``), not a refusal: the model is refused only when
loading it fails, or a smoke prediction on its input example fails, and then with the list of differences as the
likely cause (``ModelFormatError.problems``); ``strict_requirements`` refuses any difference up front. Callers:
the model server at start-up, ``legion model test`` and ``legion model info``.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import tempfile
import weakref
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cloudpickle
import numpy as np

from legion.core.dtypes import decode_column
from legion.core.errors import InvalidInputError, LegionError, ModelFormatError, NotFoundError
from legion.model import properties, requirements
from legion.model.endpoints import Endpoint, TypedEndpoint, UntypedEndpoint, accepts_argument
from legion.model.manifest import MANIFEST_NAME, PACKAGE_MANIFEST_NAME, EndpointSpec, Example, Manifest
from legion.model.table import Table

log = logging.getLogger(__name__)


@dataclass(slots=True, weakref_slot=True)
class LoadedModel:
    """A model ready to predict: its manifest and one ``Endpoint`` per name."""

    manifest: Manifest
    endpoints: dict[str, Endpoint]
    path: Path
    warnings: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)
    """Python and package versions that differ from the model's (also in ``warnings``)."""
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
    path: str | Path,
    *,
    strict_requirements: bool = False,
    check_versions: bool = True,
    property_values: Mapping[str, Any] | None = None,
) -> LoadedModel:
    """Load a model directory or ``.zip``; an MLflow model directory (``MLmodel``) is taken as it is.

    Versions that differ from the model's only warn, unless ``strict_requirements`` (and ``check_versions``,
    which turns every version check off when False) refuses them.

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
        model = _load_directory(directory, strict_requirements and check_versions)
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
    if model.mismatches and check_versions:
        _smoke(model)
    for warning in model.warnings:
        log.warning("model %s:%s: %s", model.name, model.version, warning)
    return model


def _load_directory(directory: Path, strict: bool) -> LoadedModel:
    if not (directory / MANIFEST_NAME).exists() and (directory / "MLmodel").exists():
        from legion.model.mlflow import load_mlflow  # noqa: PLC0415  # only MLflow models need it

        return load_mlflow(directory, strict=strict)
    return _load_legion(directory, strict)


def _extract(archive: Path, into: Path) -> None:
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.namelist():
            target = (into / member).resolve()
            if not target.is_relative_to(into.resolve()):
                raise ModelFormatError(f"{archive} holds a path outside the model: {member}")
        zipped.extractall(into)


def refuse_if_strict(what: str, problems: list[str], strict: bool) -> None:
    """Under ``--strict-requirements`` any version difference refuses the model."""
    if problems and strict:
        raise ModelFormatError(f"{what} cannot be loaded here (strict requirements)", problems=problems)


@contextlib.contextmanager
def likely_cause(mismatches: list[str]) -> Iterator[None]:
    """A loading step that fails where versions differ from the model's names those differences."""
    try:
        yield
    except ModelFormatError as exc:
        if not mismatches:
            raise
        raise ModelFormatError(
            f"{exc.detail}\nlikely cause, versions that differ from the model's", problems=mismatches
        ) from exc


def _smoke(model: LoadedModel) -> None:
    """Predict once on each endpoint's input example: versions differ, so show that the model still works."""
    for name, endpoint in model.endpoints.items():
        example = endpoint.spec.example
        if example is None or not isinstance(endpoint, TypedEndpoint):
            continue
        try:
            table = _example_table(endpoint, example)
        except InvalidInputError:
            continue  # an example that does not fit the signature proves nothing either way
        try:
            endpoint.predict(table)
        except LegionError as exc:
            raise ModelFormatError(
                f"model {model.name}:{model.version}: endpoint {name!r} fails on its input example ({exc.detail});"
                " likely cause, versions that differ from the model's",
                problems=model.mismatches,
            ) from exc


def _example_table(endpoint: TypedEndpoint, example: Example) -> Table:
    values = {c: [row[i] for row in example.data] for i, c in enumerate(example.columns)}
    if not example.data or any(len(row) != len(example.columns) for row in example.data):
        raise InvalidInputError("the example's rows do not match its columns")
    if not endpoint.columns:
        return Table(tuple(values), tuple(np.asarray(v) for v in values.values()))
    if {c.name for c in endpoint.columns} != set(values):
        raise InvalidInputError("the example's columns are not the endpoint's")
    arrays = tuple(decode_column(c.name, c.type, values[c.name], nullable=c.nullable) for c in endpoint.columns)
    return Table(tuple(c.name for c in endpoint.columns), arrays)


def _load_legion(directory: Path, strict: bool) -> LoadedModel:
    manifest = Manifest.read(directory)
    problems, warnings = requirements.check(manifest.python, manifest.requirements)
    missing = [
        f"endpoint {name}: artifact {spec.artifact} is missing"
        for name, spec in manifest.endpoints.items()
        if not (directory / spec.artifact).is_file()
    ]
    if missing:
        raise ModelFormatError(
            f"model {manifest.name}:{manifest.version} cannot be loaded here", problems=missing + problems
        )
    refuse_if_strict(f"model {manifest.name}:{manifest.version}", problems, strict)
    with likely_cause(problems):
        model = _load_endpoints(directory, manifest)
    model.warnings = problems + warnings
    model.mismatches = problems
    return model


def _load_endpoints(directory: Path, manifest: Manifest) -> LoadedModel:
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
    return LoadedModel(manifest=manifest, endpoints=endpoints, path=directory)


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

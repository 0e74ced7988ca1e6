"""``ModelNeeds``: the Python and the requirements a saved model asks for, read from its files without loading it.

A model's environment is built *because* the model may not load here, so nothing is unpickled: the needs come from
the manifest of a Legion model (a directory, a ``.zip`` or a local package holding one) or, for an MLflow model
directory, from its ``requirements.txt`` (else the pip part of ``conda.yaml``) and ``python_env.yaml`` (else the
``python=`` of ``conda.yaml``)::

    needs = read_needs(Path("model/"))       # ModelNeeds(python="3.11", requirements=("six==1.16.0",))

Callers: the virtualenv builder (``legion serve --env-manager virtualenv``, the ``local`` packaging with
``envManager: virtualenv``) and the image builder, which install ``requirements`` for the model.

Each requirement is checked to be a plain PEP 508 requirement by name (``name[extras] specifiers ; marker``):
the lines are handed to ``uv pip install -r``, where an option line (``--index-url``, ``-e``, ``-r``) or a URL
would change where packages come from or what runs. Such a line is refused with ``ModelFormatError`` naming it.
As the loader does, a scikit-learn-flavored MLflow model does not need MLflow itself (Legion unpickles it
directly), and Legion's own pin is left out (the environment gets the running Legion).
"""

from __future__ import annotations

import hashlib
import re
import zipfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import yaml

from legion.core.errors import ModelFormatError
from legion.model.manifest import MANIFEST_NAME, PACKAGE_MANIFEST_NAME, Manifest
from legion.model.requirements import python_version

_VERSION: Final = r"[A-Za-z0-9.*+!_-]+"
_SPECIFIER: Final = rf"(===|==|!=|~=|<=|>=|<|>)\s*{_VERSION}"
_REQUIREMENT: Final = re.compile(
    rf"^(?P<name>[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?)\s*(\[[A-Za-z0-9._,\s-]*\])?\s*"
    rf"({_SPECIFIER}(\s*,\s*{_SPECIFIER})*)?\s*(;[A-Za-z0-9_.'\"<>=!~ ()]*)?$"
)
_NOT_NEEDED_BY_SKLEARN: Final = frozenset({"mlflow", "mlflow-skinny"})
_LEGION: Final = "legion"


def normal_name(name: str) -> str:
    """A distribution name in PEP 503 normal form (``Scikit_Learn`` → ``scikit-learn``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass(frozen=True)
class ModelNeeds:
    """What a model's environment must have: a Python minor version and requirement lines (sorted, checked)."""

    python: str
    """``major.minor`` of the Python the model was saved with (``3.11``)."""
    requirements: tuple[str, ...] = ()
    """PEP 508 requirements by name, e.g. ``six==1.16.0``; never Legion itself."""

    @classmethod
    def of(cls, python: str, requirements: Iterable[str], where: str) -> ModelNeeds:
        """Needs from raw values; ``where`` names the file in the error for a refused requirement line."""
        lines = [line.strip() for line in requirements]
        refused = [line for line in lines if not _REQUIREMENT.match(line)]
        if refused:
            raise ModelFormatError(
                f"{where}: only requirements by name are installed in a model's environment (no options, URLs "
                "or paths)",
                problems=refused,
            )
        kept = {line for line in lines if normal_name(requirement_name(line)) != _LEGION}
        return cls(python=".".join(python.split(".")[:2]), requirements=tuple(sorted(kept)))

    @classmethod
    def of_manifest(cls, manifest: Manifest) -> ModelNeeds:
        """The needs a Legion manifest records (its pins, as ``name==version``)."""
        pins = [f"{name}=={version}" for name, version in manifest.requirements.items()]
        return cls.of(manifest.python, pins, f"{MANIFEST_NAME} of {manifest.name}:{manifest.version}")

    @property
    def names(self) -> frozenset[str]:
        """The normal names of the required distributions."""
        return frozenset(normal_name(requirement_name(line)) for line in self.requirements)

    def digest(self) -> str:
        """A short hash of these needs (the same needs always give the same digest)."""
        text = "\n".join([f"python {self.python}", *self.requirements])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def requirement_name(line: str) -> str:
    """The distribution name a requirement line starts with."""
    found = re.match(r"\s*[A-Za-z0-9][A-Za-z0-9._-]*", line)
    return found.group(0).strip() if found else line.strip()


def read_needs(path: Path) -> ModelNeeds:
    """The needs of the model at ``path``: a Legion model directory or ``.zip``, a local package, or an MLflow model
    directory. ``ModelFormatError`` when it is none of those or a requirement line is refused."""
    source = path.expanduser()
    if (source / PACKAGE_MANIFEST_NAME).is_file():
        source = source / "model"
    if source.is_file() and zipfile.is_zipfile(source):
        return ModelNeeds.of_manifest(_zipped_manifest(source))
    if (source / MANIFEST_NAME).is_file():
        return ModelNeeds.of_manifest(Manifest.read(source))
    if (source / "MLmodel").is_file():
        return _mlflow_needs(source)
    raise ModelFormatError(f"{path} is neither a Legion model (directory, .zip or package) nor an MLflow model")


def _zipped_manifest(archive: Path) -> Manifest:
    with zipfile.ZipFile(archive) as zipped:
        try:
            text = zipped.read(MANIFEST_NAME).decode("utf-8")
        except KeyError:
            raise ModelFormatError(f"{archive} has no {MANIFEST_NAME}") from None
    try:
        raw = yaml.safe_load(text)
        return Manifest.model_validate(raw)
    except (yaml.YAMLError, ValueError) as exc:
        raise ModelFormatError(f"{archive}: {MANIFEST_NAME} is not a valid manifest: {exc}") from None


def _mlflow_needs(directory: Path) -> ModelNeeds:
    mlmodel = _yaml(directory / "MLmodel") or {}
    conda = _yaml(directory / "conda.yaml") or {}
    python_env = _yaml(directory / "python_env.yaml") or {}
    requirements_file = directory / "requirements.txt"
    if requirements_file.is_file():
        lines, where = _lines(requirements_file.read_text(encoding="utf-8")), str(requirements_file)
    else:
        lines, where = _conda_pip(conda), str(directory / "conda.yaml")
    if "sklearn" in (mlmodel.get("flavors") or {}):
        lines = [line for line in lines if normal_name(requirement_name(line)) not in _NOT_NEEDED_BY_SKLEARN]
    python = str(python_env.get("python") or _conda_python(conda) or python_version())
    return ModelNeeds.of(python, lines, where)


def _yaml(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise ModelFormatError(f"{path} is not valid YAML: {exc}") from None
    return data if isinstance(data, dict) else None


def _lines(text: str) -> list[str]:
    """Requirement lines without comments and blanks."""
    stripped = (line.split(" #", 1)[0].strip() for line in text.splitlines() if not line.lstrip().startswith("#"))
    return [line for line in stripped if line]


def _conda_pip(conda: dict[str, Any]) -> list[str]:
    """The ``pip:`` list among a ``conda.yaml``'s dependencies."""
    for dependency in conda.get("dependencies") or []:
        if isinstance(dependency, dict) and isinstance(dependency.get("pip"), list):
            return _lines("\n".join(str(item) for item in dependency["pip"]))
    return []


def _conda_python(conda: dict[str, Any]) -> str | None:
    for dependency in conda.get("dependencies") or []:
        if isinstance(dependency, str) and re.fullmatch(r"python\s*=+\s*[0-9.]+", dependency.strip()):
            return dependency.split("=")[-1].strip()
    return None

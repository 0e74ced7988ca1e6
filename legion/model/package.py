"""Local packages: a model version made deployable on this kind of machine (the ``local`` packager's product).

A package is a directory::

    legion.package.yaml   what it holds: model name and version, Python, pinned requirements, source, time, and
                          the environment it runs in when that is not the deployer's own (``environment``)
    requirements.txt      the model's requirements, pinned (``pip install -r`` recreates its environment)
    model/                the model directory (a ``.zip`` model is unpacked)

A package made in the model's own virtualenv (``legion.environments``: a ``local`` packaging with ``envManager:
virtualenv`` runs the packager there) records it, ``environment: {manager: virtualenv, key, python}``, and the
local runtime runs the package's replicas with that ``python`` (``package_python``).

``build_package`` loads the model first, so a package is only made from a model that this environment can serve:
one that fails to load, or (where versions differ from the model's) to predict on its input example, fails the
packaging with every difference named; differences alone are warnings, as in ``legion serve``. ``load_model``
and therefore ``legion serve`` accept a package directory as they accept a model directory.

    build_package("~/.legion/models/census-1.0", "build/census-package")
"""

from __future__ import annotations

import shutil
import zipfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

import yaml

from legion.core.errors import ModelFormatError
from legion.model.loader import load_model
from legion.model.manifest import PACKAGE_MANIFEST_NAME

PACKAGE_FORMAT_VERSION: Final = 1
MODEL_DIR_NAME: Final = "model"


def is_package(path: Path) -> bool:
    return (path / PACKAGE_MANIFEST_NAME).is_file()


def packaged_model(path: Path) -> Path:
    """The model directory inside the package at ``path``."""
    return path / MODEL_DIR_NAME


def package_python(path: Path) -> Path | None:
    """The Python that the package at ``path`` runs with, when it records an environment of its own."""
    try:
        description = yaml.safe_load((path / PACKAGE_MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None
    environment = description.get("environment") if isinstance(description, dict) else None
    if not isinstance(environment, dict) or not environment.get("python"):
        return None
    return Path(str(environment["python"]))


def build_package(
    model_path: str | Path, output: str | Path, *, environment: Mapping[str, str] | None = None
) -> dict[str, object]:
    """Make a package of the model at ``model_path`` in the empty (or missing) directory ``output``; returns what
    ``legion.package.yaml`` says. ``environment`` (``manager``, ``key``, ``python``) is the model's own environment
    this runs in, recorded so that the package is served there."""
    source, target = Path(model_path).expanduser(), Path(output).expanduser()
    model = load_model(source)  # refuses a model this environment cannot serve, naming each difference
    if target.exists() and any(target.iterdir()):
        raise ModelFormatError(f"the package directory {target} is not empty")
    target.mkdir(parents=True, exist_ok=True)
    into = packaged_model(target)
    if source.is_dir():
        shutil.copytree(source, into)
    else:
        with zipfile.ZipFile(source) as zipped:
            zipped.extractall(into)  # load_model has checked every member stays inside
    manifest = model.manifest
    requirements = dict(sorted(manifest.requirements.items()))
    (target / "requirements.txt").write_text("".join(f"{n}=={v}\n" for n, v in requirements.items()), "utf-8")
    description: dict[str, object] = {
        "formatVersion": PACKAGE_FORMAT_VERSION,
        "model": {"name": manifest.name, "version": manifest.version},
        "python": manifest.python,
        "requirements": requirements,
        "source": str(source.absolute()),
        "createdAt": datetime.now(UTC).isoformat(),
    }
    if environment is not None:
        description["environment"] = dict(environment)
    (target / PACKAGE_MANIFEST_NAME).write_text(yaml.safe_dump(description, sort_keys=False), "utf-8")
    return description

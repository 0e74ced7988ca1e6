"""Build the OCI image of one Legion model: prepare the build context, render the Containerfile, run the build.

    built = build_model_image(tools, settings, ImageRequest(Path("model/"), "localhost/census:1.0"))
    built.reference, built.image_id, built.labels

The build context is a fresh temporary directory holding only what the image needs: the model (a ``.zip`` is
unpacked), the requirements (the model's pins, without Legion itself, plus Legion's own requirements constrained
by this checkout's ``constraints.txt``) and Legion's source. Every file in it gets one fixed modification time and
plain permissions, so the same inputs give the same layers and the build cache hits.

Nothing of this machine's configuration goes into the context: no pip configuration, no credentials; the CA
bundle reaches pip as a build secret (see ``containerfile``).
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from legion.core.errors import InvalidInputError, ModelFormatError
from legion.environments.needs import ModelNeeds
from legion.environments.serving import LegionSource, constraints_text, requirements_text, stage_source
from legion.images import containerfile
from legion.images.base import base_python, ensure_base
from legion.images.settings import ImageSettings
from legion.images.tools import ContainerTools
from legion.model.manifest import MANIFEST_NAME, Manifest

FIXED_MTIME: Final = 315532800  # 1980-01-01, the earliest time a zip can hold
_REFERENCE = re.compile(r"^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?$")


@dataclass(frozen=True)
class ImageRequest:
    """One image to build: the model at ``model_path`` tagged ``tag`` (e.g. ``registry:5000/census:1.0``)."""

    model_path: Path
    tag: str
    base_image: str | None = None
    """Build on this image instead of Legion's Debian base (it must have ``python3`` with ``venv``)."""


@dataclass(frozen=True)
class BuiltImage:
    """An image in local container storage."""

    reference: str
    image_id: str
    labels: Mapping[str, str] = field(default_factory=dict)


def validate_reference(reference: str) -> str:
    """``reference`` if it is a valid image reference (lowercase repository, optional registry and tag)."""
    if not _REFERENCE.match(reference):
        raise InvalidInputError(f"{reference!r} is not a valid image reference (e.g. registry:5000/census:1.0)")
    return reference


def build_model_image(
    tools: ContainerTools, settings: ImageSettings, request: ImageRequest, source: LegionSource | None = None
) -> BuiltImage:
    """Build ``request`` into the tools' container storage and return the image."""
    validate_reference(request.tag)
    source = source or LegionSource.of_running()
    with tempfile.TemporaryDirectory(prefix="legion-image-") as scratch:
        context = Path(scratch)
        manifest = _stage_model(request.model_path, context / containerfile.MODEL_CONTEXT_DIR)
        base = request.base_image or ensure_base(tools, settings)
        python = base_python(tools, base) if request.base_image is None else None
        if python is not None and ".".join(manifest.python.split(".")[:2]) != python:
            raise ModelFormatError(f"the model was saved with Python {manifest.python}; the base image has {python}")
        _stage_requirements(manifest, source, context / containerfile.REQUIREMENTS_DIR)
        stage_source(source, context / containerfile.SOURCE_DIR)
        labels = image_labels(manifest, base)
        ca_bundle = settings.pip_ca_bundle()
        spec = containerfile.ContainerfileSpec(base_image=base, labels=labels, ca_secret=ca_bundle is not None)
        (context / "Containerfile").write_text(containerfile.render(spec), encoding="utf-8")
        _settle(context)
        iidfile = Path(scratch + ".iid")
        pull = "missing" if request.base_image else "never"  # Legion's own base is never pulled
        args = ["build", "--layers", f"--pull={pull}", "--iidfile", str(iidfile),
                "--tag", request.tag, "--file", str(context / "Containerfile")]  # fmt: skip
        if ca_bundle is not None:
            args += ["--secret", f"id={containerfile.CA_SECRET_ID},src={ca_bundle}"]
        try:
            tools.podman(*args, str(context))
            image_id = iidfile.read_text(encoding="utf-8").strip()
        finally:
            iidfile.unlink(missing_ok=True)
    return BuiltImage(reference=request.tag, image_id=image_id, labels=labels)


def image_labels(manifest: Manifest, base: str, now: datetime | None = None) -> dict[str, str]:
    """The OCI ``org.opencontainers.image.*`` labels and Legion's own, from the model's manifest."""
    provenance = manifest.provenance
    created = (now or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%SZ")
    labels = {
        "org.opencontainers.image.title": manifest.name,
        "org.opencontainers.image.version": manifest.version,
        "org.opencontainers.image.description": f"Legion model server for {manifest.name} {manifest.version}",
        "org.opencontainers.image.created": created,
        "org.opencontainers.image.vendor": "Legion",
        "org.opencontainers.image.base.name": base,
        "legion.model.name": manifest.name,
        "legion.model.version": manifest.version,
        "legion.training.id": provenance.training_id or "",
        "legion.git.commit": provenance.git_commit or "",
    }
    if provenance.git_commit:
        labels["org.opencontainers.image.revision"] = provenance.git_commit
    return labels


def _stage_model(model_path: Path, into: Path) -> Manifest:
    source = model_path.expanduser()
    if source.is_dir():
        shutil.copytree(source, into, ignore=shutil.ignore_patterns("__pycache__"))
    elif source.is_file() and zipfile.is_zipfile(source):
        with zipfile.ZipFile(source) as zipped:
            for member in zipped.namelist():
                if member.startswith("/") or ".." in Path(member).parts:
                    raise ModelFormatError(f"{source} holds {member!r}, which points outside the model")
            zipped.extractall(into)
    else:
        raise ModelFormatError(f"{source} is neither a model directory nor a .zip of one")
    if not (into / MANIFEST_NAME).is_file():
        raise ModelFormatError(f"{source} has no {MANIFEST_NAME}; images are built from Legion model directories")
    return Manifest.read(into)


def _stage_requirements(manifest: Manifest, source: LegionSource, into: Path) -> None:
    needs = ModelNeeds.of_manifest(manifest)
    into.mkdir()
    (into / "requirements.txt").write_text(requirements_text(needs), encoding="utf-8")
    (into / "constraints.txt").write_text(constraints_text(needs, source), encoding="utf-8")


def _settle(context: Path) -> None:
    """One modification time and plain permissions for every file, so equal content means equal layers."""
    for directory, _dirs, files in os.walk(context):
        for name in files:
            path = Path(directory) / name
            path.chmod(0o644)
            os.utime(path, (FIXED_MTIME, FIXED_MTIME))
        Path(directory).chmod(0o755)
        os.utime(directory, (FIXED_MTIME, FIXED_MTIME))

"""The manifest ``legion.model.yaml``: what a saved model is, what it takes and what it needs to run.

Written by ``ModelBuilder.save`` and read by ``load_model``; the management API's registry stores the same
document. Field names are camelCase on disk (Legion's style) and snake_case in Python.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic.alias_generators import to_camel

from legion.core.dtypes import COLUMN_TYPES
from legion.core.errors import ModelFormatError

MANIFEST_NAME = "legion.model.yaml"
PACKAGE_MANIFEST_NAME = "legion.package.yaml"
"""Marks a local package (``legion.model.package``): the model is in its ``model/`` directory."""
FORMAT_VERSION = 1
MAX_MANIFEST_BYTES = 16 * 1024 * 1024

Flavor = Literal["python_function", "sklearn", "python_class", "mlflow"]


class _Spec(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class ColumnSpec(_Spec):
    name: str
    type: str
    nullable: bool = False

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value not in COLUMN_TYPES:
            raise ValueError(f"unknown column type {value!r}; known: {', '.join(COLUMN_TYPES)}")
        return value


class Example(_Spec):
    """One input row in era-b shape, kept from the export sample for docs and ready-to-paste calls."""

    columns: list[str]
    data: list[list[Any]]


class EndpointSpec(_Spec):
    """One named entry point of the model. ``columns`` is None for an untyped endpoint."""

    artifact: str
    columns: list[ColumnSpec] | None = None
    uses_data_frame: bool = True
    output: list[ColumnSpec] | None = None
    method: str | None = Field(default=None, description="for sklearn and class flavors: which method to call")
    description: str = ""
    example: Example | None = None


class Provenance(_Spec):
    training_id: str | None = None
    git_commit: str | None = None
    created_at: str


class Manifest(_Spec):
    format_version: int = FORMAT_VERSION
    name: str
    version: str
    flavor: Flavor
    python: str
    requirements: dict[str, str] = Field(default_factory=dict)
    endpoints: dict[str, EndpointSpec]
    metrics: dict[str, float] = Field(default_factory=dict)
    properties: dict[str, Any] = Field(default_factory=dict)
    provenance: Provenance
    artifacts: dict[str, str] = Field(default_factory=dict)

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.model_dump(by_alias=True, exclude_none=True, mode="json"), sort_keys=False)

    @classmethod
    def read(cls, directory: Path) -> Manifest:
        path = directory / MANIFEST_NAME
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ModelFormatError(f"{directory} has no {MANIFEST_NAME}") from None
        return cls.parse(text, path)

    @classmethod
    def parse(cls, text: str, path: Path | str) -> Manifest:
        """The manifest in ``text`` (read from ``path``, which errors name)."""
        try:
            raw = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ModelFormatError(f"{path} is not valid YAML: {exc}") from None
        if not isinstance(raw, dict):
            raise ModelFormatError(f"{path} must hold a mapping")
        if raw.get("formatVersion", FORMAT_VERSION) > FORMAT_VERSION:
            raise ModelFormatError(
                f"{path} has format version {raw['formatVersion']}; this Legion reads up to {FORMAT_VERSION}"
            )
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
            raise ModelFormatError(f"{path} is not a valid manifest", problems=problems) from None


def saved_manifest(path: Path) -> Manifest:
    """The manifest of the model saved at ``path`` (a model directory, a ``.zip`` of one or a local package), read
    without loading the model.

    Nothing is unpickled, so the management API may call it in its own process (to register what a deployment
    serves); ``ModelFormatError`` when there is no Legion manifest there (an MLflow model's manifest is made by
    loading it, which only a sandbox may do).

    >>> saved_manifest(Path("examples/summation/build/model")).name
    'summation'
    """
    if (path / PACKAGE_MANIFEST_NAME).is_file():
        path = path / "model"
    if path.is_dir():
        try:
            return Manifest.read(path)
        except (OSError, UnicodeDecodeError) as exc:  # unreadable, not text
            raise ModelFormatError(f"{path} holds no readable {MANIFEST_NAME}: {exc}") from None
    if not (path.is_file() and zipfile.is_zipfile(path)):
        raise ModelFormatError(f"{path} is neither a model directory nor a .zip of one")
    with zipfile.ZipFile(path) as archive:
        try:
            member = archive.getinfo(MANIFEST_NAME)
        except KeyError:
            raise ModelFormatError(f"{path} has no {MANIFEST_NAME}") from None
        if member.file_size > MAX_MANIFEST_BYTES:  # a manifest is a few kB; never inflate a bomb to read it
            raise ModelFormatError(f"{path}: {MANIFEST_NAME} is over {MAX_MANIFEST_BYTES} bytes")
        try:
            text = archive.read(member).decode("utf-8")
        except (UnicodeDecodeError, zipfile.BadZipFile) as exc:
            raise ModelFormatError(f"{path}: {MANIFEST_NAME} cannot be read: {exc}") from None
    return Manifest.parse(text, f"{path}!{MANIFEST_NAME}")

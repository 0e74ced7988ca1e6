"""``ModelRegistry``: every model version that was trained or imported, with its manifest and metrics.

The trainer registers what it produced (``source`` is the ModelTraining id), ``legion model import`` registers
with ``source="import"``. Which deployments serve a version is not stored here: the API derives it from the
ModelDeployment resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, delete, func, insert, select

from legion.api.storage.database import EngineUser, transaction
from legion.api.storage.tables import ID_LENGTH, VERSION_LENGTH, ModelVersionRow
from legion.api.storage.values import Page, check_names, check_page, json_object, utc_now
from legion.core.errors import NotFoundError

_MODEL_VERSIONS = ModelVersionRow.__table__


@dataclass(frozen=True)
class ModelVersion:
    """One registered model version; ``artifact_uri`` is where the model directory or zip lives."""

    name: str
    version: str
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    source: str
    artifact_uri: str
    created_at: datetime


class ModelRegistry(EngineUser):
    """Register, read, list and delete model versions.

    >>> registry = ModelRegistry(engine)
    >>> registry.register("census", "1.0", manifest={...}, metrics={"accuracy": 0.86},
    ...                   source="train-census-1", artifact_uri="file:///var/lib/legion/models/census-1.0.zip")
    >>> [v.version for v in registry.list("census").items]
    ['1.0']
    """

    def register(
        self,
        name: str,
        version: str,
        *,
        manifest: Mapping[str, Any],
        metrics: Mapping[str, Any] | None = None,
        source: str,
        artifact_uri: str,
    ) -> ModelVersion:
        """Add a version; ``ConflictError`` if ``name`` already has ``version`` (versions are immutable)."""
        _check_key(name, version)
        check_names("invalid model version", source=(source, ID_LENGTH), artifact_uri=(artifact_uri, 4096))
        registered = ModelVersion(
            name=name,
            version=version,
            manifest=json_object(manifest, "manifest"),
            metrics=json_object(metrics or {}, "metrics"),
            source=source,
            artifact_uri=artifact_uri,
            created_at=utc_now(),
        )
        conflict = f"model {name!r} version {version!r} is already registered"
        with transaction(self._engine, write=True, conflict=conflict) as connection:
            connection.execute(insert(ModelVersionRow).values(**registered.__dict__))
        return registered

    def get(self, name: str, version: str) -> ModelVersion:
        """The version, or ``NotFoundError`` naming it."""
        _check_key(name, version)
        with transaction(self._engine) as connection:
            row = connection.execute(select(_MODEL_VERSIONS).where(*_key(name, version))).one_or_none()
        if row is None:
            raise _not_found(name, version)
        return _model_version(row)

    def list(self, name: str | None = None, *, page: int = 0, size: int = 100) -> Page[ModelVersion]:
        """Versions of every model, or of ``name`` only, by name and then registration time."""
        check_page(page, size)
        conditions = [] if name is None else [ModelVersionRow.name == name]
        order = (ModelVersionRow.name, ModelVersionRow.created_at, ModelVersionRow.version)
        with transaction(self._engine) as connection:
            total = connection.execute(
                select(func.count()).select_from(_MODEL_VERSIONS).where(*conditions)
            ).scalar_one()
            rows = connection.execute(
                select(_MODEL_VERSIONS).where(*conditions).order_by(*order).offset(page * size).limit(size)
            ).all()
        return Page(tuple(_model_version(row) for row in rows), total, page, size)

    def delete(self, name: str, version: str) -> None:
        """Forget the version (not its artifact); ``NotFoundError`` if it is not registered."""
        _check_key(name, version)
        with transaction(self._engine, write=True) as connection:
            result = connection.execute(delete(ModelVersionRow).where(*_key(name, version)))
            if result.rowcount == 0:
                raise _not_found(name, version)


def _check_key(name: str, version: str) -> None:
    check_names("invalid model version", name=(name, ID_LENGTH), version=(version, VERSION_LENGTH))


def _key(name: str, version: str) -> tuple[Any, ...]:
    return ModelVersionRow.name == name, ModelVersionRow.version == version


def _not_found(name: str, version: str) -> NotFoundError:
    return NotFoundError(f"model {name!r} version {version!r} is not registered")


def _model_version(row: Row[Any]) -> ModelVersion:
    return ModelVersion(**{name: getattr(row, name) for name in ModelVersion.__dataclass_fields__})

"""``DeployedModels``: the model registry's side of a ModelDeployment: what it serves is registered, and described.

A deployment whose ``image`` is a model on this machine (a model directory, a ``.zip`` or a local package) has its
model registered when the reconcile loop converges it (``register``, called by ``DeploymentController``), so the
registry lists every deployed model with the deployments that serve it, trained, imported or only deployed. The
entry's ``source`` is ``deployment/<id>`` and its ``artifactUri`` the model's path.

A registered version is immutable. The same build (an equal manifest apart from ``metrics`` and ``properties``,
which change after a build; the manifest's ``provenance.createdAt`` tells two saves apart) is the registered
version: nothing new is stored. A different build under a registered name and version is a ``ConflictError``,
which keeps the deployment ``Failed`` with the reason (as a training that produces a registered version fails)
until the registry entry is removed or the image holds another version: serving two
models under one name and version would make the gateway's version paths, version-scoped tokens and per-version
quality figures ambiguous, and the registry would name the wrong model for the deployment.

``describe`` answers ``GET /api/v1/model/deployment/{id}/model`` (``legion model info DEPLOYMENT``): the registered
version the replicas report (``status.modelName``/``modelVersion``), else the one the image's manifest names, else
the image's manifest itself, unregistered (a deployment the loop has not converged yet).

Only the manifest file is read (``saved_manifest``): nothing of the model is unpickled, so this runs in the API's
process. ``locate`` (``Confinement.model_path`` in the composition root) decides which images are readable paths.

    models = DeployedModels(registry, confinement.model_path)
    models.register("census", "packages/census-pack")   # the ModelVersion, or None for no model path here
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from legion.api.storage import ModelRegistry, ModelVersion, StoredResource
from legion.api.storage.values import utc_now
from legion.core.errors import ConflictError, InvalidInputError, ModelFormatError, NotFoundError
from legion.model.manifest import Manifest, saved_manifest

log = logging.getLogger(__name__)

RESERVED_NAMES: Final = frozenset({"token", "training", "packaging", "deployment", "route"})
"""Model names that are also paths under ``/api/v1/model``: never registered."""
_CHANGE_AFTER_BUILD: Final = ("metrics", "properties")


def same_build(registered: Mapping[str, Any], deployed: Mapping[str, Any]) -> bool:
    """Whether two manifests (wire form) describe the same build: equal apart from metrics and properties."""

    def essentials(manifest: Mapping[str, Any]) -> dict[str, Any]:
        return {key: value for key, value in manifest.items() if key not in _CHANGE_AFTER_BUILD}

    return essentials(registered) == essentials(deployed)


def source_of(deployment_id: str) -> str:
    """The registry ``source`` of a model registered by deploying it."""
    return f"deployment/{deployment_id}"


@dataclass(frozen=True, slots=True)
class DeployedModel:
    """The model a deployment serves: its registry entry, or (``registered`` False) what its files say."""

    version: ModelVersion
    registered: bool


class DeployedModels:
    """Registers and describes the models that deployments serve; see the module docstring."""

    def __init__(self, registry: ModelRegistry, locate: Callable[[str], Path | None]) -> None:
        self.registry = registry
        self.locate = locate

    def read(self, image: str) -> tuple[Path, Manifest] | None:
        """The model path ``image`` names and its manifest; None when it names no readable Legion model here."""
        path = self.locate(image)
        if path is None:
            return None
        try:
            return path, saved_manifest(path)
        except (ModelFormatError, OSError) as exc:  # the runtime reports why it cannot serve it
            log.debug("image %r holds no readable manifest: %s", image, exc)
            return None

    def register(self, deployment_id: str, image: str) -> ModelVersion | None:
        """The registered version of the model ``image`` holds, registered now if it was not; None when ``image``
        is no readable model here (or has a reserved name). ``ConflictError`` when another build holds its
        name and version."""
        found = self.read(image)
        if found is None:
            return None
        path, manifest = found
        if manifest.name in RESERVED_NAMES:
            log.warning("deployment %s serves model %r, a reserved name: not registered", deployment_id, manifest.name)
            return None
        document = manifest.model_dump(mode="json", by_alias=True, exclude_none=True)
        known = self._registered(manifest.name, manifest.version)
        if known is None:
            try:
                return self.registry.register(
                    manifest.name,
                    manifest.version,
                    manifest=document,
                    metrics=manifest.metrics,
                    source=source_of(deployment_id),
                    artifact_uri=str(path),
                )
            except ConflictError:  # registered meanwhile (a training, an import, another deployment)
                known = self.registry.get(manifest.name, manifest.version)
            except InvalidInputError as exc:  # a name or version the registry cannot hold
                log.warning("deployment %s: model not registered: %s", deployment_id, exc.detail)
                return None
        if not same_build(known.manifest, document):
            raise ConflictError(
                f"image {image!r} holds model {manifest.name}:{manifest.version} (created "
                f"{manifest.provenance.created_at}), but another build of {manifest.name}:{manifest.version} is "
                f"registered (source {known.source}, {known.artifact_uri}, created "
                f"{known.manifest.get('provenance', {}).get('createdAt')}); a registered version is never replaced: "
                f"save this model under another version, or remove the registered one "
                f"(DELETE /api/v1/model/{manifest.name}/{manifest.version}) if it is stale"
            )
        return known

    def describe(self, deployment: StoredResource) -> DeployedModel:
        """The model ``deployment`` serves (see the module docstring); ``NotFoundError`` when none is known."""
        status = deployment.status
        if status.get("modelName") and status.get("modelVersion"):
            known = self._registered(str(status["modelName"]), str(status["modelVersion"]))
            if known is not None:
                return DeployedModel(known, registered=True)
        image = str(deployment.spec.get("image", ""))
        found = self.read(image)
        if found is None:
            raise NotFoundError(
                f"ModelDeployment {deployment.id!r} serves no model the API can describe: its image {image!r} "
                "is not a Legion model on the API's machine, and its replicas have not reported a registered model"
            )
        path, manifest = found
        document = manifest.model_dump(mode="json", by_alias=True, exclude_none=True)
        known = self._registered(manifest.name, manifest.version)
        if known is not None and same_build(known.manifest, document):
            return DeployedModel(known, registered=True)
        unregistered = ModelVersion(
            name=manifest.name,
            version=manifest.version,
            manifest=document,
            metrics=dict(manifest.metrics),
            source=source_of(deployment.id),
            artifact_uri=str(path),
            created_at=_created_at(manifest),
        )
        return DeployedModel(unregistered, registered=False)

    def _registered(self, name: str, version: str) -> ModelVersion | None:
        try:
            return self.registry.get(name, version)
        except (NotFoundError, InvalidInputError):
            return None


def _created_at(manifest: Manifest) -> datetime:
    try:
        return datetime.fromisoformat(manifest.provenance.created_at)
    except ValueError:
        return utc_now()

"""``/api/v1/model``: the model registry: every trained, imported or deployed model version, its manifest, metrics
and the deployments that serve it.

A model is imported by path (a Legion model directory or ``.zip``, or an MLflow model directory on the API's
machine); trainings register what they produce, and deployments the model their image holds
(``reconcile.registration``). Names that are also paths under ``/api/v1/model`` (``token``, ``training``,
``packaging``, ``deployment``, ``route``) are refused. ``GET /api/v1/model/deployment/{id}/model`` describes the
model a deployment serves (``legion model info DEPLOYMENT``), with ``registered`` false when it is known only from
the deployment's files.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParameter
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from legion.api.auth import Caller
from legion.api.confinement import Confinement
from legion.api.openapi import problem_answers
from legion.api.reconcile.registration import RESERVED_NAMES, DeployedModels
from legion.api.runtime.inspection import inspect_model
from legion.api.runtime.sandbox import Sandbox
from legion.api.storage import ModelRegistry, ModelVersion, ResourceStore
from legion.api.storage.tables import ID_LENGTH, VERSION_LENGTH
from legion.core.errors import InvalidInputError

ModelNameParameter = PathParameter(min_length=1, max_length=ID_LENGTH, description="the model's name")
VersionParameter = PathParameter(min_length=1, max_length=VERSION_LENGTH, description="the model's version")
DeploymentParameter = PathParameter(min_length=1, max_length=ID_LENGTH, description="the ModelDeployment's id")


class ImportRequest(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    path: str = Field(min_length=1, max_length=4096, description="model directory or .zip on the API's machine")


def _existing(text: str) -> Path:
    """The user's ``path`` resolved, or a 422 naming the field: a NUL, a name the OS refuses (over 255 bytes), a
    path that does not exist are the caller's mistakes, not the server's."""
    try:
        path = Path(text).expanduser().resolve()
        if path.exists():
            return path
        reason = f"{text[:200]} does not exist on the API's machine"
    except ValueError as exc:  # an embedded NUL
        reason = f"{text[:200]!r} is not a path: {exc}"
    except OSError as exc:  # name too long, permission denied, a loop of links, ...
        reason = f"{text[:200]!r} cannot be read: {exc.strerror or exc}"
    raise InvalidInputError.for_fields({"path": reason})


def _document(version: ModelVersion, deployments: list[str]) -> dict[str, Any]:
    return {
        "name": version.name,
        "version": version.version,
        "source": version.source,
        "artifactUri": version.artifact_uri,
        "createdAt": version.created_at.isoformat(),
        "metrics": version.metrics,
        "manifest": version.manifest,
        "deployments": deployments,
    }


def registry_router(
    registry: ModelRegistry,
    store: ResourceStore,
    caller: Any,
    *,
    confinement: Confinement,
    sandbox: Sandbox,
    models: DeployedModels,
) -> APIRouter:
    router = APIRouter(prefix="/api/v1/model", tags=["models"])

    def deployments_of(version: ModelVersion) -> list[str]:
        """The deployments that serve the version (by what their replicas report) or name its artifact."""
        serving = (version.name, version.version)
        return sorted(
            d.id
            for d in store.all("ModelDeployment")
            if (d.status.get("modelName"), d.status.get("modelVersion")) == serving
            or d.spec.get("image") == version.artifact_uri
        )

    @router.get("", summary="List model versions")
    def list_models(name: str | None = None, who: Caller = Depends(caller)) -> list[dict[str, Any]]:
        who.can_read()
        return [_document(v, deployments_of(v)) for v in registry.list(name, size=1000).items]

    @router.get(
        "/deployment/{deployment_id}/model",
        summary="The model a deployment serves",
        responses=problem_answers(**{"404": "No such deployment, or no model known for it"}),
    )
    def deployment_model(deployment_id: str = DeploymentParameter, who: Caller = Depends(caller)) -> dict[str, Any]:
        who.can_read()
        served = models.describe(store.get("ModelDeployment", deployment_id))
        deployments = deployments_of(served.version) if served.registered else [deployment_id]
        return {**_document(served.version, deployments), "registered": served.registered}

    @router.get("/{name}/{version}", summary="Get one model version")
    def get_model(
        name: str = ModelNameParameter, version: str = VersionParameter, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        who.can_read()
        found = registry.get(name, version)
        return _document(found, deployments_of(found))

    @router.post(
        "",
        status_code=201,
        summary="Import a model saved on this machine",
        responses=problem_answers(409, **{"422": "The path names no readable model on the API's machine"}),
    )
    def import_model(request: ImportRequest, who: Caller = Depends(caller)) -> dict[str, Any]:
        who.can_write("ModelDeployment")
        path = _existing(str(confinement.check_path("path", request.path)))  # where, then whether: no probing
        # Loaded in the sandbox, never here: loading runs the model's own code. ModelFormatError (422) names
        # each problem (the manifest, the versions, the artifacts).
        manifest = inspect_model(path, sandbox)
        if manifest.name in RESERVED_NAMES:
            raise InvalidInputError.for_fields({"name": f"{manifest.name!r} is reserved; rename the model"})
        registered = registry.register(
            manifest.name,
            manifest.version,
            manifest=manifest.model_dump(mode="json", by_alias=True, exclude_none=True),
            metrics=manifest.metrics,
            source="import",  # never the manifest's training id: anyone can write one, and a packaging trusts source
            artifact_uri=str(path),
        )
        return _document(registered, deployments_of(registered))

    @router.delete("/{name}/{version}", summary="Forget a model version (its files stay)")
    def delete_model(
        name: str = ModelNameParameter, version: str = VersionParameter, who: Caller = Depends(caller)
    ) -> dict[str, str]:
        who.can_write("ModelDeployment")
        registry.delete(name, version)
        return {"message": f"model {name}:{version} is removed from the registry"}

    return router

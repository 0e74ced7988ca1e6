"""``PackagingController``: a ModelPackaging runs its integration as a local job over a trained artifact.

The artifact is the model a training registered (``models/<artifactName>``, ``artifactName`` being the training's
``<model name>-<version>``, as its ``status.artifacts`` says). When a ModelTraining makes that artifact (the newest
one, if several name it), the packaging follows that training's run of its current spec, not whatever the
directory holds: it waits in ``scheduling`` ("waiting for training ...") until the run has succeeded, fails with
the training's reason when it failed, and then packs the model that run registered (the registry says which
training registered it). So a training and its packaging applied at once never pack a model an earlier training
left under the same name. An artifact no training makes (an imported model) is packed when it is there.

The integration's ``entrypoint`` is the command:
``legion ...`` runs this Legion (``legion model package`` is the ``local`` packager), with the artifact and the
output directory as its last two arguments and the packaging's ``arguments`` as ``$LEGION_PACKAGING_ARGUMENTS``
(JSON). On success the package is copied to ``packages/<id>`` and named in ``results`` (``package``), which is what a
ModelDeployment's ``image`` takes on the local runtime.

The argument ``envManager`` says where the packager runs: ``local`` (the default), with the API's own Python;
``virtualenv``, in the model's own virtualenv, made first (``EnvironmentBuilds``, the packaging waits in
``scheduling`` meanwhile). A ``legion model package`` run there records the virtualenv in the package, and the
local runtime runs the package's replicas with it.

An integration whose entrypoint is ``legion model image`` (``docker-rest``) is no job: the API builds the model's
OCI image and pushes it to the ``docker-push`` target's registry itself (``legion.api.reconcile.images``), and
``results`` name the image by digest (``image``) and by tag (``tag``).
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from legion.api.reconcile.environments import EnvironmentBuilds
from legion.api.reconcile.images import BUILDING as BUILDING_IMAGE
from legion.api.reconcile.images import IMAGE_ENTRYPOINT, ImageBuilds, failure_reason, image_results, plan_image
from legion.api.reconcile.jobs import STARTUP_ERRORS, JobController
from legion.api.reconcile.outcomes import Done, Failed, Outcome, Retry
from legion.api.reconcile.trainings import artifact_name
from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.jobs import PACKAGINGS, JobObservation, LocalJobs
from legion.api.storage import ModelRegistry, ResourceStore, StoredResource
from legion.api.storage.typed import stored_resource
from legion.core.errors import LegionError, NotFoundError
from legion.core.resources import (
    Connection,
    ModelPackaging,
    ModelPackagingStatus,
    ModelTraining,
    PackagingIntegration,
    PackagingResult,
    StatusPatch,
)

WAIT_FOR_ARTIFACT_S: Final = 2.0
ENV_MANAGERS: Final = ("local", "virtualenv")
BUILDING: Final = (
    "making the model's virtualenv (envManager: virtualenv); the first one for its requirements takes a while"
)


class PackagingController(JobController):
    kind = "ModelPackaging"
    job_kind = PACKAGINGS
    status_model = ModelPackagingStatus
    products = "results"

    def __init__(
        self,
        store: ResourceStore,
        registry: ModelRegistry,
        jobs: LocalJobs,
        *,
        models_dir: Path,
        packages_dir: Path,
        environments: EnvironmentBuilds,
        images: ImageBuilds | None = None,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(store, jobs, poll_s=poll_s)
        self.registry = registry
        self.models_dir = models_dir
        self.packages_dir = packages_dir
        self.environments = environments
        self.images = images

    async def remove(self, ident: str) -> bool:
        self.environments.forget(f"{ident}@")
        if self.images is not None:
            self.images.forget(f"{ident}@")
        return await super().remove(ident)

    async def _finish(self, stored: StoredResource, observation: JobObservation) -> Outcome:
        assert observation.model_dir is not None
        target = self.packages_dir / stored.id
        await asyncio.to_thread(_replace_tree, observation.model_dir, target)
        made = PackagingResult(name="package", value=str(target.absolute()))
        return Done(StatusPatch(ModelPackagingStatus(state="succeeded", exit_code=0, results=[made])))

    async def _start(self, stored: StoredResource) -> Outcome:
        resource = stored_resource(stored)
        assert isinstance(resource, ModelPackaging)
        spec = resource.spec
        held = await asyncio.to_thread(self._held_by_training, stored, spec.artifact_name)
        if held is not None:
            return held
        artifact = self.models_dir / spec.artifact_name
        if not artifact.is_dir():
            waiting = f"waiting for the artifact {spec.artifact_name!r}"
            return Retry(WAIT_FOR_ARTIFACT_S, StatusPatch(ModelPackagingStatus(state="scheduling", message=waiting)))
        try:
            integration = stored_resource(
                await asyncio.to_thread(self.store.get, "PackagingIntegration", spec.integration_name)
            )
            assert isinstance(integration, PackagingIntegration)
            command = shlex.split(integration.spec.entrypoint)
            if " ".join(command) == IMAGE_ENTRYPOINT:
                return await self._image(stored, resource, artifact)
            if not command or command[0] not in ("legion", "legionctl"):
                raise PermanentRuntimeError(
                    f"the local runtime runs 'legion ...' packagers; {spec.integration_name!r} has entrypoint "
                    f"{integration.spec.entrypoint!r}"
                )
            manager = spec.arguments.get("envManager", "local")
            if manager not in ENV_MANAGERS:
                raise PermanentRuntimeError(f"envManager must be one of {', '.join(ENV_MANAGERS)}, not {manager!r}")
            python: str | None = None
            if manager == "virtualenv":
                environment = self.environments.poll(f"{stored.id}@{stored.generation}", artifact)
                if environment is None:
                    return Retry(self.poll_s, StatusPatch(ModelPackagingStatus(state="scheduling", message=BUILDING)))
                python = str(environment.python)
            argv = ["-m", "legion", *command[1:], str(artifact), "{output}"]
            env = {"LEGION_PACKAGING_ID": stored.id, "LEGION_PACKAGING_ARGUMENTS": json.dumps(spec.arguments)}
            await self.jobs.start_packaging(
                stored.id, argv, env, inputs=(artifact,), python=python, resources=spec.resources
            )
        except STARTUP_ERRORS as exc:
            return self._not_started(stored, exc)
        return self._started(stored)

    async def _image(self, stored: StoredResource, resource: ModelPackaging, artifact: Path) -> Outcome:
        """A ``docker-rest`` packaging: the API builds and pushes the image (``ImageBuilds``) while the packaging
        is ``running``; then ``succeeded`` with the image's digest reference, or ``failed`` with the reason."""
        if self.images is None:
            raise PermanentRuntimeError(f"this API builds no images; {resource.spec.integration_name!r} needs it")
        try:
            plan = await asyncio.to_thread(plan_image, resource.spec, artifact, self._connection)
        except LegionError as exc:
            return self._failed(stored, exc.detail, "the packaging cannot be built as asked")
        try:
            pushed = self.images.poll(f"{stored.id}@{stored.generation}", plan)
        except LegionError as exc:
            return self._failed(
                stored, failure_reason(plan, exc), f"building or pushing {plan.target.reference} failed"
            )
        if pushed is None:
            building = ModelPackagingStatus(
                state="running", observed_generation=stored.generation, message=BUILDING_IMAGE
            )
            return Retry(self.poll_s, StatusPatch(building))
        done = ModelPackagingStatus(
            state="succeeded", observed_generation=stored.generation, message=None, results=image_results(pushed)
        )
        return Done(StatusPatch(done))

    def _connection(self, ident: str) -> Connection | None:
        try:
            found = stored_resource(self.store.get("Connection", ident))
        except NotFoundError:
            return None
        return found if isinstance(found, Connection) else None

    def _held_by_training(self, stored: StoredResource, artifact: str) -> Outcome | None:
        """What the training that makes ``artifact`` says of this packaging: wait (its run has not succeeded
        yet), fail (its run failed, or what is registered is not its model), or nothing (no training makes it,
        or the registered model is its run's: pack it)."""
        making = _training_making(self.store.all("ModelTraining"), artifact)
        if making is None:
            return None
        training, resource = making
        status = training.status
        state = status.get("state", "scheduling") if status.get("observedGeneration") == training.generation else None
        if state == "failed":
            why = f"its training {training.id!r} failed: {status.get('reason') or 'no reason given'}"
            return self._failed(stored, why, f"training {training.id!r} failed")
        if state != "succeeded":
            waiting = f"waiting for training {training.id!r} ({state or 'scheduling'})"
            return Retry(WAIT_FOR_ARTIFACT_S, StatusPatch(ModelPackagingStatus(state="scheduling", message=waiting)))
        model = resource.spec.model
        try:
            source = self.registry.get(model.name, model.version).source
        except NotFoundError:
            source = None
        if source != training.id:
            made = f"model {model.name}:{model.version}, which training {training.id!r} made,"
            held = "is not registered any more" if source is None else f"is registered from {source!r} now"
            why = f"{made} {held}; run the training again under a new version"
            return self._failed(stored, why, f"the model of training {training.id!r} is gone")
        return None

    def _failed(self, stored: StoredResource, reason: str, message: str) -> Outcome:
        failed = ModelPackagingStatus(
            state="failed", reason=reason, message=message, observed_generation=stored.generation
        )
        return Failed(StatusPatch(failed))


def _training_making(trainings: Sequence[StoredResource], artifact: str) -> tuple[StoredResource, ModelTraining] | None:
    """The ModelTraining whose model is ``artifact``; of several, the one created last (the one a user applied
    with this packaging, whose run is what they expect to be packed)."""
    making: list[tuple[StoredResource, ModelTraining]] = []
    for stored in trainings:
        resource = stored_resource(stored)
        if isinstance(resource, ModelTraining) and not stored.deleting and artifact_name(resource.spec) == artifact:
            making.append((stored, resource))
    return max(making, key=lambda pair: pair[0].created_at, default=None)


def _replace_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)

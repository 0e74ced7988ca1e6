"""``PackagingController``: a ModelPackaging runs its integration as a local job over a trained artifact.

The artifact is the model a training registered (``models/<artifactName>``); a packaging applied together with
its training waits in ``scheduling`` until the model is there. The integration's ``entrypoint`` is the command:
``legion ...`` runs this Legion (``legion model package`` is the ``local`` packager), with the artifact and the
output directory as its last two arguments and the packaging's ``arguments`` as ``$LEGION_PACKAGING_ARGUMENTS``
(JSON). On success the package is copied to ``packages/<id>`` and named in ``results`` (``package``), which is what a
ModelDeployment's ``image`` takes on the local runtime.
"""

from __future__ import annotations

import asyncio
import json
import shlex
import shutil
from pathlib import Path
from typing import Final

from legion.api.reconcile.jobs import STARTUP_ERRORS, JobController
from legion.api.reconcile.outcomes import Done, Outcome, Retry
from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.jobs import PACKAGINGS, JobObservation, LocalJobs
from legion.api.storage import ResourceStore, StoredResource
from legion.api.storage.typed import stored_resource
from legion.core.resources import (
    ModelPackaging,
    ModelPackagingStatus,
    PackagingIntegration,
    PackagingResult,
    StatusPatch,
)

WAIT_FOR_ARTIFACT_S: Final = 2.0


class PackagingController(JobController):
    kind = "ModelPackaging"
    job_kind = PACKAGINGS
    status_model = ModelPackagingStatus
    products = "results"

    def __init__(
        self, store: ResourceStore, jobs: LocalJobs, *, models_dir: Path, packages_dir: Path, poll_s: float = 1.0
    ) -> None:
        super().__init__(store, jobs, poll_s=poll_s)
        self.models_dir = models_dir
        self.packages_dir = packages_dir

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
            if not command or command[0] not in ("legion", "legionctl"):
                raise PermanentRuntimeError(
                    f"the local runtime runs 'legion ...' packagers; {spec.integration_name!r} has entrypoint "
                    f"{integration.spec.entrypoint!r}"
                )
            argv = ["-m", "legion", *command[1:], str(artifact), "{output}"]
            env = {"LEGION_PACKAGING_ID": stored.id, "LEGION_PACKAGING_ARGUMENTS": json.dumps(spec.arguments)}
            await self.jobs.start_packaging(stored.id, argv, env, inputs=(artifact,), resources=spec.resources)
        except STARTUP_ERRORS as exc:
            return self._not_started(stored, exc)
        return self._started(stored)


def _replace_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)

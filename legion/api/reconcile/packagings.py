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

from legion.api.reconcile.outcomes import Done, Failed, Outcome, Retry, StatusWriter
from legion.api.resources_routes import stored_resource
from legion.api.runtime.base import PermanentRuntimeError, TemporaryRuntimeError
from legion.api.runtime.jobs import PACKAGINGS, LocalJobs
from legion.api.storage import ResourceStore, StoredResource
from legion.core.errors import NotFoundError
from legion.core.resources import ModelPackaging, PackagingIntegration

ENDED: Final = frozenset({"succeeded", "failed"})
WAIT_FOR_ARTIFACT_S: Final = 2.0


class PackagingController:
    kind = "ModelPackaging"
    deleting_state: str | None = None

    def __init__(
        self, store: ResourceStore, jobs: LocalJobs, *, models_dir: Path, packages_dir: Path, poll_s: float = 1.0
    ) -> None:
        self.store = store
        self.jobs = jobs
        self.models_dir = models_dir
        self.packages_dir = packages_dir
        self.poll_s = poll_s

    async def remove(self, ident: str) -> bool:
        try:
            await self.jobs.delete_training(ident, PACKAGINGS)
        except TemporaryRuntimeError:
            return False
        return True

    async def converge(self, stored: StoredResource, write: StatusWriter) -> Outcome:
        status = stored.status
        run_of = status.get("observedGeneration")
        if run_of == stored.generation and status.get("state") in ENDED:
            return Done()
        if run_of is not None and run_of != stored.generation:
            if not await self.remove(stored.id):
                return Retry(self.poll_s)
            await write(stored, state="scheduling", exitCode=None, processId=None, results=[], message=None)
            stored = await asyncio.to_thread(self.store.get, self.kind, stored.id)
        observation = await self.jobs.observe(stored.id, PACKAGINGS)
        if observation is None:
            return await self._start(stored, write)
        if observation.state == "running":
            await write(stored, state="running", processId=observation.pid)
            return Retry(self.poll_s)
        if observation.state == "failed":
            await write(stored, state="failed", exitCode=observation.exit_code, reason=observation.reason)
            return Failed(observation.reason or "failed")
        assert observation.model_dir is not None
        target = self.packages_dir / stored.id
        await asyncio.to_thread(_replace_tree, observation.model_dir, target)
        results = [{"name": "package", "value": str(target.absolute())}]
        await write(stored, state="succeeded", exitCode=0, results=results)
        return Done()

    async def _start(self, stored: StoredResource, write: StatusWriter) -> Outcome:
        resource = stored_resource(stored)
        assert isinstance(resource, ModelPackaging)
        spec = resource.spec
        artifact = self.models_dir / spec.artifact_name
        if not artifact.is_dir():
            await write(stored, state="scheduling", message=f"waiting for the artifact {spec.artifact_name!r}")
            return Retry(WAIT_FOR_ARTIFACT_S)
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
            await self.jobs.start_packaging(stored.id, argv, env)
        except (PermanentRuntimeError, NotFoundError) as exc:
            reason = exc.reason if isinstance(exc, PermanentRuntimeError) else exc.detail
            await write(stored, state="failed", reason=reason, observedGeneration=stored.generation, message=None)
            return Failed(reason)
        await write(stored, state="running", observedGeneration=stored.generation, message=None)
        return Retry(self.poll_s)


def _replace_tree(source: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(source, target)

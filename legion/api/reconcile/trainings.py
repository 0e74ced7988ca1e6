"""``TrainingController``: a ModelTraining runs once per spec generation as a local job, and registers its model.

Steps, each a reconcile look: ``scheduling`` (said first, in a look of its own, because what follows can take a
while: the model version is checked to be free, the code is copied or cloned at its reference into
``sources/<id>``, ``data`` is bound, the job starts) → ``running`` (looked at every ``poll_s``) → ``succeeded``
(the saved model is copied to ``models/<name>-<version>`` and registered, with the training's metrics and commit)
or ``failed`` (the exit code, the exception and the end of the log in ``reason``; or, when the code ended well but
the model cannot be registered, why not, with a ``message`` that says so). A model version is registered once: a
training whose version is taken (by another training, an import, or an earlier run of itself) fails before it runs,
so a retrain is a new ``model.version``. A changed spec runs the training again; a deleted training's process is
stopped and its files removed (a registered model stays). Every step's status is in the outcome it returns; the
loop writes it.

The ``python`` toolchain runs the entrypoint with the API's own interpreter (so ``legion.model`` is importable);
the integration's ``additionalEnvironments`` are set for every run, under the training's own ``envs``.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Final

from legion.api.reconcile.jobs import STARTUP_ERRORS, JobController
from legion.api.reconcile.outcomes import Done, Failed, Outcome, Retry
from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.jobs import TRAININGS, JobObservation, LocalJobs
from legion.api.runtime.sources import bind_data, prepare_source
from legion.api.storage import ModelRegistry, ResourceStore, StoredResource
from legion.api.storage.typed import stored_resource
from legion.core.errors import ConflictError, NotFoundError
from legion.core.resources import (
    Connection,
    ConnectionSpec,
    EnvironmentVariable,
    ModelTraining,
    ModelTrainingSpec,
    ModelTrainingStatus,
    StatusPatch,
    ToolchainIntegration,
    TrainingResult,
)
from legion.model import Manifest

PREPARING: Final = "getting the code and data"
NOT_REGISTERED: Final = "the training's code ended well, but its model was not registered"


def artifact_name(spec: ModelTrainingSpec) -> str:
    """What a training's model is called among the artifacts (and in a ModelPackaging's ``artifactName``)."""
    return f"{spec.model.name}-{spec.model.version}"


class TrainingController(JobController):
    kind = "ModelTraining"
    job_kind = TRAININGS
    status_model = ModelTrainingStatus
    products = "artifacts"

    def __init__(
        self,
        store: ResourceStore,
        registry: ModelRegistry,
        jobs: LocalJobs,
        *,
        work_dir: Path,
        models_dir: Path,
        local_root: Path,
        poll_s: float = 1.0,
    ) -> None:
        super().__init__(store, jobs, poll_s=poll_s)
        self.registry = registry
        self.sources_dir = work_dir / "sources"
        self.models_dir = models_dir
        self.local_root = local_root
        self._announced: set[str] = set()
        """Trainings whose ``scheduling`` status already says that their code and data are being fetched."""

    async def remove(self, ident: str) -> bool:
        if not await super().remove(ident):
            return False
        self._announced.discard(ident)
        await asyncio.to_thread(shutil.rmtree, self.sources_dir / ident, True)
        return True

    async def _start(self, stored: StoredResource) -> Outcome:
        if stored.id not in self._announced:  # say so first (a look of its own): a git clone can take a while
            self._announced.add(stored.id)
            return Retry(0.0, StatusPatch(ModelTrainingStatus(state="scheduling", message=PREPARING)))
        self._announced.discard(stored.id)
        resource = stored_resource(stored)
        assert isinstance(resource, ModelTraining)
        spec = resource.spec
        source = self.sources_dir / stored.id
        try:
            await asyncio.to_thread(self._check_version_is_free, stored.id, spec)
            toolchain, vcs, connections = await asyncio.to_thread(self._references, spec)
            sandbox = self.jobs.sandbox  # the copies below never read from what it hides
            commit = await asyncio.to_thread(
                prepare_source, spec, vcs, source, local_root=self.local_root, sandbox=sandbox
            )
            cwd = source / spec.work_dir if spec.work_dir else source
            await asyncio.to_thread(bind_data, spec.data, connections, cwd, sandbox)
            extra = [EnvironmentVariable(name=k, value=v) for k, v in toolchain.spec.additional_environments.items()]
            given = {e.name for e in spec.envs}
            run_spec = spec.model_copy(update={"envs": [e for e in extra if e.name not in given] + spec.envs})
            await self.jobs.start_training(stored.id, run_spec, source_dir=source, git_commit=commit)
        except STARTUP_ERRORS as exc:
            return self._not_started(stored, exc)
        made = [TrainingResult(artifact_name=artifact_name(spec), commit_id=commit, run_id=stored.id)] if commit else []
        return self._started(stored, made)

    def _references(
        self, spec: ModelTrainingSpec
    ) -> tuple[ToolchainIntegration, ConnectionSpec | None, dict[str, ConnectionSpec]]:
        toolchain = stored_resource(self.store.get("ToolchainIntegration", spec.toolchain))
        assert isinstance(toolchain, ToolchainIntegration)
        names = {b.conn_name for b in spec.data} | ({spec.vcs_name} if spec.vcs_name else set())
        connections: dict[str, ConnectionSpec] = {}
        for name in names:
            connection = stored_resource(self.store.get("Connection", name))
            assert isinstance(connection, Connection)
            connections[name] = connection.spec
        return toolchain, connections.get(spec.vcs_name) if spec.vcs_name else None, connections

    async def _finish(self, stored: StoredResource, observation: JobObservation) -> Outcome:
        resource = stored_resource(stored)
        assert isinstance(resource, ModelTraining)
        spec = resource.spec
        assert observation.model_dir is not None
        name = artifact_name(spec)
        try:
            await asyncio.to_thread(self._keep_model, stored.id, observation, name, spec)
        except (ConflictError, PermanentRuntimeError) as exc:
            # The code ran to the end (exit code 0, which stays in the status as the fact it is); what failed is
            # the platform's step after it, and that is the cause to show.
            reason = exc.detail if isinstance(exc, ConflictError) else exc.reason
            failed = ModelTrainingStatus(state="failed", exit_code=0, reason=reason, message=NOT_REGISTERED)
            return Failed(StatusPatch(failed))
        commit = next((a.commit_id for a in resource.status.artifacts if a.commit_id), None)
        made = TrainingResult(artifact_name=name, commit_id=commit, run_id=stored.id)
        return Done(StatusPatch(ModelTrainingStatus(state="succeeded", exit_code=0, artifacts=[made], message=None)))

    def _check_version_is_free(self, training_id: str, spec: ModelTrainingSpec) -> None:
        """``ConflictError`` when the model version this run is to make is registered already.

        Checked before the run starts, so that a training that cannot be registered fails at once and not after
        its work: a version is immutable, and whatever holds it now (another training, an import, an earlier
        run of this same training) is not what this run will make. (Two runs that start together still race;
        ``_keep_model`` refuses the second.)
        """
        try:
            known = self.registry.get(spec.model.name, spec.model.version)
        except NotFoundError:
            return
        raise ConflictError(_taken(spec.model.name, spec.model.version, known.source, training_id))

    def _keep_model(self, training_id: str, observation: JobObservation, name: str, spec: ModelTrainingSpec) -> None:
        """Copy the model out of the job's directory and register it (again after a restart: nothing new)."""
        assert observation.model_dir is not None
        manifest = Manifest.read(observation.model_dir)
        if (manifest.name, manifest.version) != (spec.model.name, spec.model.version):
            raise PermanentRuntimeError(
                f"the training saved model {manifest.name}:{manifest.version}, but its spec says "
                f"{spec.model.name}:{spec.model.version} (read $LEGION_MODEL_NAME and $LEGION_MODEL_VERSION, "
                "or make the two agree)"
            )
        document = manifest.model_dump(by_alias=True, exclude_none=True, mode="json")
        target = self.models_dir / name
        try:
            known = self.registry.get(manifest.name, manifest.version)
        except NotFoundError:
            known = None
        if known is not None:
            # This very run, registered before an API restart, has the same manifest (its creation time is in
            # it); anything else that holds the version, an earlier run of this training too, is not its model.
            if known.source != training_id or known.manifest != document:
                raise ConflictError(_taken(manifest.name, manifest.version, known.source, training_id))
            return
        if target.exists():
            shutil.rmtree(target)
        shutil.copytree(observation.model_dir, target)
        self.registry.register(
            manifest.name,
            manifest.version,
            manifest=document,
            metrics={**manifest.metrics, **observation.metrics},
            source=training_id,
            artifact_uri=target.absolute().as_uri(),
        )


def _taken(name: str, version: str, source: str, training_id: str) -> str:
    """Why a model version cannot be registered by ``training_id``: who holds it, and what to do."""
    holder = "an earlier run of this training" if source == training_id else f"{source!r}"
    return (
        f"model {name!r} version {version!r} is already registered (from {holder}); a version is registered "
        "once: give the training another model version (spec.model.version)"
    )

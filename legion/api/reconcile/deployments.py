"""``DeploymentController``: a ModelDeployment's replicas through the ``Runtime``, its status from what runs.

``Ready`` once ``availableReplicas`` reaches ``minReplicas`` (then ``observedGeneration`` says which spec is
served); ``Processing`` while replicas start; ``Failed`` with the runtime's reason when it cannot converge.
A ``minReplicas: 0`` deployment that is ``demand``ed runs one replica until ``idle_s`` pass without demand.
A deployment of ``packages/<id>`` whose ModelPackaging has not ended yet waits for it (``Processing``, with a
message), so a whole pipeline can be applied at once; when that packaging's current run failed, the deployment is
``Failed`` with its reason (never serving what an earlier run left) until the packaging runs again. The model an
image holds is registered before replicas start (``registration.DeployedModels``); another build under a registered
name and version keeps the deployment ``Failed`` (looked at again every ``REGISTRY_RECHECK_S``: removing the stale
entry or saving a new version needs no change of spec), and the status names the model from the manifest until a
replica reports the one it serves.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from typing import Final

from legion.api.reconcile.outcomes import Failed, Outcome, Retry, Settled
from legion.api.reconcile.registration import DeployedModels
from legion.api.runtime.base import PermanentRuntimeError, Runtime, TemporaryRuntimeError
from legion.api.storage import ModelVersion, ResourceStore, StoredResource
from legion.api.storage.typed import stored_resource
from legion.core.errors import ConflictError, NotFoundError
from legion.core.resources import (
    ENDED_JOB_STATES,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    StatusPatch,
)

WAIT_FOR_PACKAGE_S: Final = 2.0
REGISTRY_RECHECK_S: Final = 5.0
_PACKAGE_IMAGE: Final = re.compile(r"packages/([^/]+)/?")


class DeploymentController:
    kind = "ModelDeployment"
    deleting: StatusPatch | None = StatusPatch(ModelDeploymentStatus(state="Deleting"))

    def __init__(
        self,
        runtime: Runtime,
        *,
        progress_s: float,
        idle_s: float,
        store: ResourceStore | None = None,
        models: DeployedModels | None = None,
    ) -> None:
        self.runtime = runtime
        self.store = store
        self.models = models
        self.progress_s = progress_s
        self.idle_s = idle_s
        self._demanded: dict[str, float] = {}

    def demand(self, ident: str) -> bool:
        """Keep one replica of ``ident`` for ``idle_s`` more; True when it was not demanded already."""
        now = time.monotonic()
        fresh = self._demanded.get(ident, 0.0) <= now
        self._demanded[ident] = now + self.idle_s
        return fresh

    async def remove(self, ident: str) -> bool:
        self._demanded.pop(ident, None)
        return await self.runtime.delete_deployment(ident)

    async def _packaging_of(self, image: str) -> StoredResource | None:
        """The ModelPackaging that makes ``image`` (``packages/<id>``), if it is one and exists."""
        found = _PACKAGE_IMAGE.fullmatch(image)
        if found is None or self.store is None:
            return None
        try:
            return await asyncio.to_thread(self.store.get, "ModelPackaging", found[1])
        except NotFoundError:
            return None

    async def _before_replicas(self, ident: str, image: str) -> tuple[Outcome | None, ModelVersion | None]:
        """An outcome that stops here (the package is still being made or its packaging failed, another build of
        the model is registered), else none and the registered model the image holds (None when it holds no model
        the API can read)."""
        packaging = await self._packaging_of(image)
        if packaging is not None:
            state = packaging.status.get("state")
            if state not in ENDED_JOB_STATES:
                message = f"waiting for ModelPackaging {packaging.id!r} to make the image"
                waiting = StatusPatch(ModelDeploymentStatus(state="Processing", message=message))
                return Retry(WAIT_FOR_PACKAGE_S, waiting), None
            if state == "failed" and packaging.status.get("observedGeneration") == packaging.generation:
                # never serve what an earlier run of it left in packages/<id>; looked at again, as it may be re-run
                why = packaging.status.get("reason") or "no reason given"
                reason = f"its ModelPackaging {packaging.id!r} failed: {why}"
                return Retry(
                    WAIT_FOR_PACKAGE_S, StatusPatch(ModelDeploymentStatus(state="Failed", reason=reason))
                ), None
        if self.models is None:
            return None, None
        try:
            return None, await asyncio.to_thread(self.models.register, ident, image)
        except ConflictError as exc:  # never serve another build under a registered name and version
            # Failed, but looked at again: the registry or the image's files may change without the spec changing
            failed = StatusPatch(ModelDeploymentStatus(state="Failed", reason=exc.detail))
            return Retry(REGISTRY_RECHECK_S, failed), None

    def _wanted(self, ident: str, spec: ModelDeploymentSpec) -> tuple[ModelDeploymentSpec, float]:
        """The spec to converge to: one replica more than ``minReplicas: 0`` while demanded; and until when."""
        demanded_until = self._demanded.get(ident, 0.0)
        if spec.min_replicas == 0 and demanded_until > time.monotonic():
            return spec.model_copy(update={"min_replicas": 1}), demanded_until
        self._demanded.pop(ident, None)
        return spec, 0.0

    async def converge(self, stored: StoredResource) -> Outcome:
        ident = stored.id
        resource = stored_resource(stored)
        assert isinstance(resource, ModelDeployment)
        spec, demanded_until = self._wanted(ident, resource.spec)
        stop, registered = await self._before_replicas(ident, spec.image)
        if stop is not None:
            return stop
        try:
            seen = await self.runtime.apply_deployment(ident, spec)
        except PermanentRuntimeError as exc:
            return Failed(StatusPatch(ModelDeploymentStatus(state="Failed", reason=exc.reason)))
        except TemporaryRuntimeError as exc:
            return Retry(exc.retry_after_s, StatusPatch(ModelDeploymentStatus(state="Processing")))
        ready = seen.available >= spec.min_replicas
        if seen.model_name is None and registered is not None:  # a runtime that cannot tell (in memory, no replica)
            seen = replace(seen, model_name=registered.name, model_version=registered.version)
        status = StatusPatch(ModelDeploymentStatus(
            state="Ready" if ready else "Processing",
            replicas=seen.replicas, available_replicas=seen.available,
            service_url=seen.service_url, endpoints=list(seen.endpoints),
            model_name=seen.model_name, model_version=seen.model_version, message=None,
            enforced_limits=seen.enforced_limits,
            observed_generation=stored.generation if ready else None,
        ))  # fmt: skip
        if not ready:
            return Retry(self.progress_s, status)
        if spec.min_replicas > resource.spec.min_replicas:  # held up by demand: look again when it may lapse
            return Retry(max(self.progress_s, demanded_until - time.monotonic()), status)
        return Settled(status)

"""``DeploymentController``: a ModelDeployment's replicas through the ``Runtime``, its status from what runs.

``Ready`` once ``availableReplicas`` reaches ``minReplicas`` (then ``observedGeneration`` says which spec is
served); ``Processing`` while replicas start; ``Failed`` with the runtime's reason when it cannot converge.
A ``minReplicas: 0`` deployment that is ``demand``ed runs one replica until ``idle_s`` pass without demand.
A deployment of ``packages/<id>`` whose ModelPackaging has not ended yet waits for it (``Processing``, with a
message), so a whole pipeline can be applied at once.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Final

from legion.api.reconcile.outcomes import Failed, Outcome, Retry, Settled
from legion.api.runtime.base import PermanentRuntimeError, Runtime, TemporaryRuntimeError
from legion.api.storage import ResourceStore, StoredResource
from legion.api.storage.typed import stored_resource
from legion.core.errors import NotFoundError
from legion.core.resources import (
    ENDED_JOB_STATES,
    ModelDeployment,
    ModelDeploymentSpec,
    ModelDeploymentStatus,
    StatusPatch,
)

WAIT_FOR_PACKAGE_S: Final = 2.0
_PACKAGE_IMAGE: Final = re.compile(r"packages/([^/]+)/?")


class DeploymentController:
    kind = "ModelDeployment"
    deleting: StatusPatch | None = StatusPatch(ModelDeploymentStatus(state="Deleting"))

    def __init__(
        self, runtime: Runtime, *, progress_s: float, idle_s: float, store: ResourceStore | None = None
    ) -> None:
        self.runtime = runtime
        self.store = store
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

    async def _awaited_packaging(self, image: str) -> str | None:
        """The packaging still making ``image`` (``packages/<id>`` of a packaging not ended yet), if any."""
        found = _PACKAGE_IMAGE.fullmatch(image)
        if found is None or self.store is None:
            return None
        try:
            packaging = await asyncio.to_thread(self.store.get, "ModelPackaging", found[1])
        except NotFoundError:
            return None
        return None if packaging.status.get("state") in ENDED_JOB_STATES else packaging.id

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
        awaited = await self._awaited_packaging(spec.image)
        if awaited is not None:
            waiting = f"waiting for ModelPackaging {awaited!r} to make the image"
            return Retry(WAIT_FOR_PACKAGE_S, StatusPatch(ModelDeploymentStatus(state="Processing", message=waiting)))
        try:
            seen = await self.runtime.apply_deployment(ident, spec)
        except PermanentRuntimeError as exc:
            return Failed(StatusPatch(ModelDeploymentStatus(state="Failed", reason=exc.reason)))
        except TemporaryRuntimeError as exc:
            return Retry(exc.retry_after_s, StatusPatch(ModelDeploymentStatus(state="Processing")))
        ready = seen.available >= spec.min_replicas
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

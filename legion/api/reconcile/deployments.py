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

from legion.api.reconcile.outcomes import Failed, Outcome, Retry, Settled, StatusWriter
from legion.api.runtime.base import PermanentRuntimeError, Runtime, TemporaryRuntimeError
from legion.api.storage import ResourceStore, StoredResource
from legion.api.storage.typed import stored_resource
from legion.core.errors import NotFoundError
from legion.core.resources import ModelDeployment, ModelDeploymentSpec

WAIT_FOR_PACKAGE_S: Final = 2.0
_PACKAGE_IMAGE: Final = re.compile(r"packages/([^/]+)/?")


class DeploymentController:
    kind = "ModelDeployment"
    deleting_state: str | None = "Deleting"

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
        return None if packaging.status.get("state") in ("succeeded", "failed") else packaging.id

    def _wanted(self, ident: str, spec: ModelDeploymentSpec) -> tuple[ModelDeploymentSpec, float]:
        """The spec to converge to: one replica more than ``minReplicas: 0`` while demanded; and until when."""
        demanded_until = self._demanded.get(ident, 0.0)
        if spec.min_replicas == 0 and demanded_until > time.monotonic():
            return spec.model_copy(update={"min_replicas": 1}), demanded_until
        self._demanded.pop(ident, None)
        return spec, 0.0

    async def converge(self, stored: StoredResource, write: StatusWriter) -> Outcome:
        ident = stored.id
        resource = stored_resource(stored)
        assert isinstance(resource, ModelDeployment)
        spec, demanded_until = self._wanted(ident, resource.spec)
        awaited = await self._awaited_packaging(spec.image)
        if awaited is not None:
            await write(stored, state="Processing", message=f"waiting for ModelPackaging {awaited!r} to make the image")
            return Retry(WAIT_FOR_PACKAGE_S)
        try:
            seen = await self.runtime.apply_deployment(ident, spec)
        except PermanentRuntimeError as exc:
            await write(stored, state="Failed", reason=exc.reason)
            return Failed(exc.reason)
        except TemporaryRuntimeError as exc:
            await write(stored, state="Processing", reason=exc.reason)
            return Retry(exc.retry_after_s)
        ready = seen.available >= spec.min_replicas
        await write(
            stored,
            state="Ready" if ready else "Processing",
            replicas=seen.replicas, availableReplicas=seen.available,
            serviceURL=seen.service_url, endpoints=list(seen.endpoints),
            modelName=seen.model_name, modelVersion=seen.model_version, message=None,
            observedGeneration=stored.generation if ready else None,
        )  # fmt: skip
        if not ready:
            return Retry(self.progress_s)
        if spec.min_replicas > resource.spec.min_replicas:  # held up by demand: look again when it may lapse
            return Retry(max(self.progress_s, demanded_until - time.monotonic()))
        return Settled()

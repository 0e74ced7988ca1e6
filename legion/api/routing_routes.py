"""``/api/v1/routing``: what the gateway needs to route, as one snapshot it can long-poll.

The gateway (``legion gateway``) keeps its routing table from this document: every deployment with the base URLs of
its ready replicas and the model it serves, every route with its weights and mirror, and the ids of revoked model
tokens. ``GET /api/v1/routing?since=<etag>&wait=<s>`` answers at once when the snapshot's ``etag`` differs from
``since``, and otherwise holds the request until something changes or ``wait`` seconds pass (then it answers with
the same etag). A change made through this API process wakes the waiters at once; writers elsewhere (another API
process on the same database) are noticed by re-reading every ``RECHECK_S``. When the server is told to stop,
``ChangeSignal.close`` answers every held request at once (503: the API is stopping, so a gateway backs off
instead of asking again at once until the socket closes), and a gateway's long-poll never holds a shutdown up.

``POST /api/v1/routing/demand/{deployment}`` tells the reconcile loop that a request is waiting for a deployment that
has no ready replica (scale from zero): the loop runs at least one replica for a while, then lets it go.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter, Depends, Path, Query

from legion.api.auth import Caller
from legion.api.storage import ResourceStore, StoredResource, TokenRevocations
from legion.api.storage.tables import ID_LENGTH
from legion.core.errors import NotFoundError, UnavailableError
from legion.core.routing import RoutingDeployment, RoutingRoute, RoutingSnapshot

RECHECK_S: Final = 1.0
MAX_WAIT_S: Final = 60.0


class ChangeSignal:
    """Wakes long-polls when something they show may have changed; ``notify`` may be called from any thread."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._event: asyncio.Event | None = None
        self.closing = False
        """Set when the server is stopping: long-polls answer at once instead of holding shutdown up."""
        self.held = 0
        """Long-polls waiting now (one per gateway worker following this API)."""

    def bind(self) -> None:
        """Attach to the running event loop (the app's lifespan calls this)."""
        self._loop = asyncio.get_running_loop()
        self._event = asyncio.Event()

    def notify(self) -> None:
        loop, event = self._loop, self._event
        if loop is None or event is None or loop.is_closed():
            return
        loop.call_soon_threadsafe(event.set)

    def close(self) -> None:
        """The server is stopping: release every waiting long-poll (called from a signal handler)."""
        self.closing = True
        self.notify()

    async def wait(self, timeout_s: float) -> None:
        """Return after the next ``notify`` or ``timeout_s``, whichever comes first."""
        if self._event is None:
            await asyncio.sleep(timeout_s)
            return
        event = self._event
        if event.is_set():
            event.clear()
        try:
            await asyncio.wait_for(event.wait(), timeout_s)
        except TimeoutError:
            return


# What a deployment's routing entry takes from its stored spec and status (wire names); what is not stored takes the
# snapshot's default (``legion.core.routing``).
_FROM_SPEC: Final = ("minReplicas", "maxReplicas", "predictionLogging")
_FROM_STATUS: Final = ("state", "endpoints", "modelName", "modelVersion")


def _deployment(item: StoredResource) -> RoutingDeployment:
    spec, status = item.spec, item.status
    stored: dict[str, Any] = {name: spec[name] for name in _FROM_SPEC if name in spec}
    stored.update((name, status[name]) for name in _FROM_STATUS if name in status)
    return RoutingDeployment.model_validate({"id": item.id, "deleting": item.deleting, **stored})


def snapshot(store: ResourceStore, revocations: TokenRevocations) -> RoutingSnapshot:
    """The routing document, with an ``etag`` that moves whenever any part of it does."""
    deployments = [_deployment(item) for item in store.all("ModelDeployment")]
    # a route's spec is the routing entry's fields (urlPrefix, modelDeployments, mirror)
    routes = [RoutingRoute.model_validate({**item.spec, "id": item.id}) for item in store.all("ModelRoute")]
    revoked = sorted(revocations.revoked())
    digest = hashlib.sha256(repr((deployments, routes, revoked)).encode()).hexdigest()[:16]
    return RoutingSnapshot(etag=digest, deployments=deployments, routes=routes, revoked_tokens=revoked)


def routing_router(
    store: ResourceStore,
    revocations: TokenRevocations,
    signal: ChangeSignal,
    caller: Any,
    demand: Callable[[str], None],
) -> APIRouter:
    router = APIRouter(prefix="/api/v1/routing", tags=["routing"])

    @router.get("")
    async def routing(
        since: str | None = Query(default=None, max_length=64, description="the etag the caller holds"),
        wait: float = Query(default=0.0, ge=0.0, le=MAX_WAIT_S, description="seconds to hold an unchanged answer"),
        who: Caller = Depends(caller),
    ) -> RoutingSnapshot:
        who.can_read()
        deadline = time.monotonic() + wait
        signal.held += 1
        try:
            while True:
                current = await asyncio.to_thread(snapshot, store, revocations)
                left = deadline - time.monotonic()
                if current.etag != since or left <= 0:
                    return current
                if signal.closing:  # an unchanged answer now would only be asked again at once, until we are gone
                    raise UnavailableError("the management API is stopping; ask again later")
                await signal.wait(min(left, RECHECK_S))
        finally:
            signal.held -= 1

    @router.post("/demand/{deployment_id}", status_code=202)
    async def wanted(
        deployment_id: str = Path(min_length=1, max_length=ID_LENGTH), who: Caller = Depends(caller)
    ) -> dict[str, str]:
        who.can_wake_deployments()  # before the lookup: a viewer learns nothing of which deployments exist
        stored = await asyncio.to_thread(store.get, "ModelDeployment", deployment_id)
        if stored.deleting:
            raise NotFoundError(f"deployment {deployment_id!r} is being deleted")
        demand(deployment_id)
        return {"message": f"deployment {deployment_id} is asked to run a replica"}

    return router

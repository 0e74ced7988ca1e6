"""The reconcile loop: desired state in the database, a ``Runtime`` asked to converge, status written back.

One coroutine (``Reconciler.run``) keeps a schedule of deployments to look at. It wakes when the store's change
log has news (the API calls ``wake`` after each write; other writers are noticed by polling the log every
``resync_s``) or when the next deployment is due, so nothing spins while nothing changes. Each look is one
``reconcile_deployment`` call whose ``Outcome`` is a value:

- ``Settled``: converged (``Ready``); look again after ``resync_s`` to notice dead replicas;
- ``Retry(delay_s)``: progressing (replicas starting) or a temporary failure, with backoff per deployment;
- ``Failed``: a permanent failure, written to the status; not retried until the spec changes;
- ``Gone``: deleted; dropped from the schedule.

A deployment with ``minReplicas: 0`` runs no replica until someone ``demand``s one (the gateway does, when a request
waits for it); it then runs one until ``idle_s`` pass without another demand.

Status is written only when it differs from what is stored, so the loop never wakes itself up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from legion.api.resources_routes import stored_resource
from legion.api.runtime.base import PermanentRuntimeError, Runtime, TemporaryRuntimeError
from legion.api.storage import ChangeAction, ResourceStore, StoredResource
from legion.core.errors import NotFoundError
from legion.core.resources import ModelDeployment, ModelDeploymentSpec

log = logging.getLogger(__name__)
KIND = "ModelDeployment"


@dataclass(frozen=True, slots=True)
class Settled:
    pass


@dataclass(frozen=True, slots=True)
class Retry:
    delay_s: float


@dataclass(frozen=True, slots=True)
class Failed:
    reason: str


@dataclass(frozen=True, slots=True)
class Gone:
    pass


Outcome = Settled | Retry | Failed | Gone


class Reconciler:
    """Drives ``runtime`` towards the ModelDeployments in ``store``."""

    def __init__(
        self,
        store: ResourceStore,
        runtime: Runtime,
        *,
        resync_s: float = 10.0,
        progress_s: float = 0.5,
        max_backoff_s: float = 30.0,
        concurrency: int = 8,
        idle_s: float = 300.0,
        on_status: Callable[[], None] = lambda: None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.resync_s = resync_s
        self.progress_s = progress_s
        self.max_backoff_s = max_backoff_s
        self.idle_s = idle_s
        self._on_status = on_status
        self._demanded: dict[str, float] = {}
        self._limit = asyncio.Semaphore(concurrency)
        self._due: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._revision = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.passes = 0
        """How many times the loop has woken up (tests use it to show that an idle loop sleeps)."""

    def wake(self) -> None:
        """Something changed: look at the change log now (from the loop's own thread)."""
        self._wake.set()

    def wake_threadsafe(self) -> None:
        """``wake`` from any thread, e.g. a request handler running in a worker thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def demand(self, ident: str) -> None:
        """A request waits for ``ident``: run at least one replica for the next ``idle_s`` (from the loop's thread)."""
        now = time.monotonic()
        fresh = self._demanded.get(ident, 0.0) <= now
        self._demanded[ident] = now + self.idle_s
        if fresh:
            self._due[ident] = now
            self._wake.set()

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._revision = await asyncio.to_thread(self.store.revision)
        page = await asyncio.to_thread(self.store.list, KIND, size=1000)
        now = time.monotonic()
        self._due.update(dict.fromkeys((item.id for item in page.items), now))
        last_poll = now
        while not stop.is_set():
            self.passes += 1
            now = time.monotonic()
            if self._wake.is_set() or now - last_poll >= self.resync_s:
                self._wake.clear()
                last_poll = now
                await self._read_changes()
            due = [ident for ident, at in self._due.items() if at <= now]
            if due:
                await asyncio.gather(*(self._look(ident) for ident in due))
            await self._sleep(stop, last_poll)

    async def _sleep(self, stop: asyncio.Event, last_poll: float) -> None:
        wake_at = min([*self._due.values(), last_poll + self.resync_s])
        timeout = max(0.0, wake_at - time.monotonic())
        waiters = [asyncio.ensure_future(self._wake.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    async def _read_changes(self) -> None:
        while True:
            changes = await asyncio.to_thread(self.store.changes_since, self._revision)
            for change in changes:
                self._revision = change.revision
                if change.kind == KIND and change.action != ChangeAction.STATUS:
                    self._due[change.id] = time.monotonic()
                    self._failures.pop(change.id, None)
            if len(changes) < 1000:
                return

    async def _look(self, ident: str) -> None:
        async with self._limit:
            try:
                outcome = await self.reconcile_deployment(ident)
            except Exception as exc:  # one broken deployment must not stop the loop
                log.exception("reconciling deployment %s failed", ident)
                outcome = Retry(self._backoff(ident)) if not isinstance(exc, NotFoundError) else Gone()
        now = time.monotonic()
        match outcome:
            case Settled():
                self._failures.pop(ident, None)
                self._due[ident] = now + self.resync_s
            case Retry(delay_s):
                self._due[ident] = now + delay_s
            case Failed() | Gone():
                self._due.pop(ident, None)

    def _backoff(self, ident: str) -> float:
        failures = self._failures.get(ident, 0) + 1
        self._failures[ident] = failures
        return float(min(self.max_backoff_s, self.progress_s * 2**failures))

    async def reconcile_deployment(self, ident: str) -> Outcome:
        """One step for one deployment; see the module docstring for the outcomes."""
        try:
            stored = await asyncio.to_thread(self.store.get, KIND, ident)
        except NotFoundError:
            await self.runtime.delete_deployment(ident)
            return Gone()
        if stored.deleting:
            if await self.runtime.delete_deployment(ident):
                await asyncio.to_thread(self.store.delete, KIND, ident)
                return Gone()
            await self._write(stored.status, ident, stored.generation, state="Deleting")
            return Retry(self.progress_s)
        return await self._converge(stored)

    def _wanted(self, ident: str, spec: ModelDeploymentSpec) -> tuple[ModelDeploymentSpec, float]:
        """The spec to converge to: one replica more than ``minReplicas: 0`` while demanded; and until when."""
        demanded_until = self._demanded.get(ident, 0.0)
        if spec.min_replicas == 0 and demanded_until > time.monotonic():
            return spec.model_copy(update={"min_replicas": 1}), demanded_until
        self._demanded.pop(ident, None)
        return spec, 0.0

    async def _converge(self, stored: StoredResource) -> Outcome:
        ident = stored.id
        resource = stored_resource(stored)
        assert isinstance(resource, ModelDeployment)
        spec, demanded_until = self._wanted(ident, resource.spec)
        try:
            seen = await self.runtime.apply_deployment(ident, spec)
        except PermanentRuntimeError as exc:
            await self._write(stored.status, ident, stored.generation, state="Failed", reason=exc.reason)
            return Failed(exc.reason)
        except TemporaryRuntimeError as exc:
            await self._write(stored.status, ident, stored.generation, state="Processing", reason=exc.reason)
            return Retry(min(self.max_backoff_s, exc.retry_after_s))
        ready = seen.available >= spec.min_replicas
        await self._write(
            stored.status, ident, stored.generation,
            state="Ready" if ready else "Processing",
            replicas=seen.replicas, availableReplicas=seen.available,
            serviceURL=seen.service_url, endpoints=list(seen.endpoints),
            modelName=seen.model_name, modelVersion=seen.model_version,
            observedGeneration=stored.generation if ready else None,
        )  # fmt: skip
        if not ready:
            return Retry(self.progress_s)
        if spec.min_replicas > resource.spec.min_replicas:  # held up by demand: look again when it may lapse
            return Retry(max(self.progress_s, demanded_until - time.monotonic()))
        return Settled()

    async def _write(self, current: dict[str, Any], ident: str, generation: int, **status: Any) -> None:
        """Store the status when it differs from ``current`` (a reason is kept only on ``Failed``)."""
        merged = {**current, **status}
        if merged.get("state") != "Failed":
            merged.pop("reason", None)
        wanted = {k: v for k, v in merged.items() if v is not None}
        if _without_time(wanted) == _without_time(current):
            return
        wanted["lastUpdatedTime"] = datetime.now(UTC).isoformat()
        await asyncio.to_thread(self.store.update_status, KIND, ident, wanted, expected_generation=generation)
        self._on_status()


def _without_time(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "lastUpdatedTime"}

"""The reconcile loop: desired state in the database, controllers asked to converge, status written back.

One coroutine (``Reconciler.run``) keeps a schedule of ``(kind, id)`` to look at, for every kind that has a
controller (deployments always; trainings and packagings when the runtime can run jobs). It wakes when the
store's change log has news (the API calls ``wake`` after each write; other writers are noticed by polling the log
every ``resync_s``) or when the next look is due, so nothing spins while nothing changes. Each look is one
controller step whose ``Outcome`` (``legion.api.reconcile.outcomes``) is a value: ``Settled`` looks again after
``resync_s``, ``Retry`` after its delay (backoff per object on errors), ``Failed``/``Done``/``Gone`` drop the object
from the schedule until its spec changes.

Deletion is the loop's too: an object marked deleting has its runtime parts removed by its controller, and is then
deleted from the store. Status is written only when it differs from what is stored, so the loop never wakes itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from legion.api.reconcile.deployments import DeploymentController
from legion.api.reconcile.outcomes import Controller, Done, Failed, Gone, Outcome, Retry, Settled, without_time
from legion.api.runtime.base import Runtime
from legion.api.storage import ChangeAction, ResourceStore, StoredResource
from legion.core.errors import NotFoundError

log = logging.getLogger(__name__)
Key = tuple[str, str]
_FAILED_STATES = frozenset({"Failed", "failed"})


class Reconciler:
    """Drives ``runtime`` towards the ModelDeployments in ``store`` (and, with ``add``, other kinds).

    A deployment with ``minReplicas: 0`` runs no replica until someone ``demand``s one (the gateway does, when a
    request waits for it); it then runs one until ``idle_s`` pass without another demand.
    """

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
        on_step: Callable[[str, str, float], None] = lambda kind, outcome, seconds: None,
    ) -> None:
        self.store = store
        self.runtime = runtime
        self.resync_s = resync_s
        self.progress_s = progress_s
        self.max_backoff_s = max_backoff_s
        self.deployments = DeploymentController(runtime, progress_s=progress_s, idle_s=idle_s, store=store)
        self._controllers: dict[str, Controller] = {self.deployments.kind: self.deployments}
        self._on_status = on_status
        self._on_step = on_step
        """Told ``(kind, outcome, seconds)`` after each step (the API's metrics); ``error`` when a step raised."""
        self._limit = asyncio.Semaphore(concurrency)
        self._due: dict[Key, float] = {}
        self._failures: dict[Key, int] = {}
        self._wake = asyncio.Event()
        self._revision = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self.passes = 0
        """How many times the loop has woken up (tests use it to show that an idle loop sleeps)."""

    def add(self, controller: Controller) -> None:
        """Reconcile ``controller.kind`` too (before ``run``)."""
        self._controllers[controller.kind] = controller

    def wake(self) -> None:
        """Something changed: look at the change log now (from the loop's own thread)."""
        self._wake.set()

    def wake_threadsafe(self) -> None:
        """``wake`` from any thread, e.g. a request handler running in a worker thread."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake.set)

    def demand(self, ident: str) -> None:
        """A request waits for deployment ``ident``: run at least one replica for the next ``idle_s``."""
        if self.deployments.demand(ident):
            self._due[(self.deployments.kind, ident)] = time.monotonic()
            self._wake.set()

    def queue_depth(self) -> tuple[int, int]:
        """``(due now, scheduled in all)``; call it on the loop's thread (it reads the schedule unlocked)."""
        now = time.monotonic()
        return sum(1 for at in self._due.values() if at <= now), len(self._due)

    async def run(self, stop: asyncio.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._revision = await asyncio.to_thread(self.store.revision)
        now = time.monotonic()
        for kind in self._controllers:
            items = await asyncio.to_thread(self.store.all, kind)
            self._due.update(dict.fromkeys(((kind, item.id) for item in items), now))
        last_poll = now
        while not stop.is_set():
            self.passes += 1
            now = time.monotonic()
            if self._wake.is_set() or now - last_poll >= self.resync_s:
                self._wake.clear()
                last_poll = now
                await self._read_changes()
            due = [key for key, at in self._due.items() if at <= now]
            if due:
                await asyncio.gather(*(self._look(key) for key in due))
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
                if change.kind in self._controllers and change.action != ChangeAction.STATUS:
                    key = (change.kind, change.id)
                    self._due[key] = time.monotonic()
                    self._failures.pop(key, None)
            if len(changes) < 1000:
                return

    async def _look(self, key: Key) -> None:
        async with self._limit:
            started = time.monotonic()
            try:
                outcome = await self.reconcile(*key)
                label = type(outcome).__name__.lower()
            except Exception as exc:  # one broken object must not stop the loop
                log.exception("reconciling %s %s failed", *key)
                outcome = Retry(self._backoff(key)) if not isinstance(exc, NotFoundError) else Gone()
                label = "error"
        now = time.monotonic()
        self._on_step(key[0], label, now - started)
        match outcome:
            case Settled():
                self._failures.pop(key, None)
                self._due[key] = now + self.resync_s
            case Retry(delay_s):
                self._due[key] = now + delay_s
            case Failed() | Done() | Gone():
                self._due.pop(key, None)

    def _backoff(self, key: Key) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return float(min(self.max_backoff_s, self.progress_s * 2**failures))

    async def reconcile(self, kind: str, ident: str) -> Outcome:
        """One step for one object; see the module docstring for the outcomes."""
        controller = self._controllers[kind]
        try:
            stored = await asyncio.to_thread(self.store.get, kind, ident)
        except NotFoundError:
            await controller.remove(ident)
            return Gone()
        if stored.deleting:
            if await controller.remove(ident):
                await asyncio.to_thread(self.store.delete, kind, ident)
                return Gone()
            if controller.deleting_state is not None:
                await self._write(stored, state=controller.deleting_state)
            return Retry(self.progress_s)
        outcome = await controller.converge(stored, self._write)
        if isinstance(outcome, Retry):
            return Retry(min(self.max_backoff_s, outcome.delay_s))
        return outcome

    async def reconcile_deployment(self, ident: str) -> Outcome:
        return await self.reconcile(self.deployments.kind, ident)

    async def _write(self, stored: StoredResource, **status: Any) -> None:
        """Store the status when it differs from the stored one (a reason is kept only in a failed state)."""
        current = stored.status
        merged = {**current, **status}
        if merged.get("state") not in _FAILED_STATES:
            merged.pop("reason", None)
        wanted = {k: v for k, v in merged.items() if v is not None}
        if without_time(wanted) == without_time(current):
            return
        wanted["lastUpdatedTime"] = datetime.now(UTC).isoformat()
        await asyncio.to_thread(
            self.store.update_status, stored.kind, stored.id, wanted, expected_generation=stored.generation
        )
        self._on_status()

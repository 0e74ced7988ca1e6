"""The reconcile loop: desired state in the database, controllers asked to converge, status written back.

One coroutine (``Reconciler.run``) keeps a schedule of ``(kind, id)`` to look at, for every kind that has a
controller registered with ``add`` (the composition root adds deployments always, trainings and packagings when
the runtime can run jobs). It wakes when the store's change log has news (the API calls ``wake`` after each
write; other writers are noticed by polling the log every ``resync_s``) or when the next look is due, so nothing
spins while nothing changes. Each look is one controller step whose ``Outcome`` (``legion.api.reconcile.outcomes``)
is a value: ``Settled`` looks again after ``resync_s``, ``Retry`` after its delay (backoff per object on errors),
``Failed``/``Done``/``Gone`` drop the object from the schedule until its spec changes. The loop is the only writer
of a status: it applies the ``StatusPatch`` an outcome carries.

Deletion is the loop's too: an object marked deleting has its runtime parts removed by its controller, and is then
deleted from the store. Status is written only when it differs from what is stored, so the loop never wakes itself.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from legion.api.reconcile.outcomes import Controller, Done, Failed, Gone, OnDemand, Outcome, Retry, Settled
from legion.api.storage import ChangeAction, ResourceStore, StoredResource
from legion.core.errors import NotFoundError
from legion.core.resources import StatusPatch

log = logging.getLogger(__name__)
Key = tuple[str, str]


@dataclass(frozen=True, slots=True)
class LoopSettings:
    """How often and how widely the loop looks (seconds and counts)."""

    resync_s: float = 10.0
    """Look again at a settled object, and poll the store's change log, after this long."""
    progress_s: float = 0.5
    """Look again at an object being deleted after this long; the first backoff step after an error."""
    max_backoff_s: float = 30.0
    """The longest wait before a look again, whatever a controller or the backoff asks."""
    concurrency: int = 8
    """How many objects are looked at at once."""


class Reconciler:
    """Drives the objects in ``store`` of every kind a controller was ``add``ed for towards their specs.

    ``on_status`` is told after each status write (the routing long-polls wake on it); ``on_step`` is told
    ``(kind, outcome, seconds)`` after each step (the API's metrics), with outcome ``error`` when a step raised.

        reconciler = Reconciler(store, LoopSettings(resync_s=10.0))
        reconciler.add(DeploymentController(runtime, store=store, progress_s=0.5, idle_s=300.0))
        await reconciler.run(stop)
    """

    def __init__(
        self,
        store: ResourceStore,
        settings: LoopSettings = LoopSettings(),  # frozen: one shared default is safe
        *,
        on_status: Callable[[], None] = lambda: None,
        on_step: Callable[[str, str, float], None] = lambda kind, outcome, seconds: None,
    ) -> None:
        self.store = store
        self.settings = settings
        self._controllers: dict[str, Controller] = {}
        self._on_status = on_status
        self._on_step = on_step
        self._limit = asyncio.Semaphore(settings.concurrency)
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

    def demand(self, ident: str, kind: str = "ModelDeployment") -> None:
        """A request waits for ``ident`` (a deployment: run at least one replica for a while); from the loop's
        thread. Nothing happens for a kind without an ``OnDemand`` controller."""
        controller = self._controllers.get(kind)
        if isinstance(controller, OnDemand) and controller.demand(ident):
            self._due[(kind, ident)] = time.monotonic()
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
            if self._wake.is_set() or now - last_poll >= self.settings.resync_s:
                self._wake.clear()
                last_poll = now
                await self._read_changes()
            due = [key for key, at in self._due.items() if at <= now]
            if due:
                await asyncio.gather(*(self._look(key) for key in due))
            await self._sleep(stop, last_poll)

    async def _sleep(self, stop: asyncio.Event, last_poll: float) -> None:
        wake_at = min([*self._due.values(), last_poll + self.settings.resync_s])
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
                self._due[key] = now + self.settings.resync_s
            case Retry(delay_s):
                self._due[key] = now + delay_s
            case Failed() | Done() | Gone():
                self._due.pop(key, None)

    def _backoff(self, key: Key) -> float:
        failures = self._failures.get(key, 0) + 1
        self._failures[key] = failures
        return float(min(self.settings.max_backoff_s, self.settings.progress_s * 2**failures))

    async def reconcile(self, kind: str, ident: str) -> Outcome:
        """One step for one object, its status written; see the module docstring for the outcomes."""
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
            await self._write(stored, controller.deleting)
            return Retry(self.settings.progress_s)
        outcome = await controller.converge(stored)
        match outcome:
            case Settled(status) | Retry(_, status) | Failed(status) | Done(status):
                await self._write(stored, status)
        if isinstance(outcome, Retry):
            return replace(outcome, delay_s=min(self.settings.max_backoff_s, outcome.delay_s))
        return outcome

    async def _write(self, stored: StoredResource, patch: StatusPatch | None) -> None:
        """Store the patched status when it differs from the stored one (its time aside)."""
        if patch is None:
            return
        current = stored.status
        wanted: dict[str, Any] = patch.apply(current)
        if _without_time(wanted) == _without_time(current):
            return
        wanted["lastUpdatedTime"] = datetime.now(UTC).isoformat()
        await asyncio.to_thread(
            self.store.update_status, stored.kind, stored.id, wanted, expected_generation=stored.generation
        )
        self._on_status()


def _without_time(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "lastUpdatedTime"}

"""``JobController``: what trainings and packagings share — one run per spec generation, as a local job.

A look at a job object: ended for this generation → ``Done``; the spec changed since its run → the old run is
removed and the object goes back to ``scheduling``; not started → ``_start`` (the kind's own preparation); running →
look again after ``poll_s``; failed → ``failed`` with the exit code and the end of the log; succeeded → ``_finish``
(the kind's own bookkeeping: register the model, keep the package).
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from typing import Any, Final

from legion.api.reconcile.outcomes import Done, Failed, Outcome, Retry, StatusWriter
from legion.api.runtime.base import PermanentRuntimeError, TemporaryRuntimeError
from legion.api.runtime.jobs import JobKind, JobObservation, LocalJobs
from legion.api.storage import ResourceStore, StoredResource
from legion.core.errors import LegionError

ENDED: Final = frozenset({"succeeded", "failed"})


class JobController(ABC):
    kind: str
    job_kind: JobKind
    products: str
    """The status field that lists what a run made (``artifacts``, ``results``); emptied when the spec changes."""
    deleting_state: str | None = None

    def __init__(self, store: ResourceStore, jobs: LocalJobs, *, poll_s: float = 1.0) -> None:
        self.store = store
        self.jobs = jobs
        self.poll_s = poll_s

    async def remove(self, ident: str) -> bool:
        try:
            await self.jobs.delete(ident, self.job_kind)
        except TemporaryRuntimeError:
            return False
        return True

    async def converge(self, stored: StoredResource, write: StatusWriter) -> Outcome:
        run_of = stored.status.get("observedGeneration")
        if run_of == stored.generation and stored.status.get("state") in ENDED:
            return Done()
        if run_of is not None and run_of != stored.generation:  # the spec changed: run it again
            if not await self.remove(stored.id):
                return Retry(self.poll_s)
            reset: dict[str, Any] = {self.products: []}
            await write(stored, state="scheduling", exitCode=None, processId=None, message=None, **reset)
            stored = await asyncio.to_thread(self.store.get, self.kind, stored.id)
        observation = await self.jobs.observe(stored.id, self.job_kind)
        if observation is None:
            return await self._start(stored, write)
        if observation.state == "running":
            await write(stored, state="running", processId=observation.pid)
            return Retry(self.poll_s)
        if observation.state == "failed":
            await write(stored, state="failed", exitCode=observation.exit_code, reason=observation.reason)
            return Failed(observation.reason or "failed")
        return await self._finish(stored, observation, write)

    async def _not_started(self, stored: StoredResource, write: StatusWriter, exc: Exception) -> Outcome:
        """The run could not start (a permanent reason): ``failed`` for this generation."""
        reason = exc.reason if isinstance(exc, PermanentRuntimeError) else getattr(exc, "detail", str(exc))
        await write(stored, state="failed", reason=reason, observedGeneration=stored.generation, message=None)
        return Failed(reason)

    async def _started(self, stored: StoredResource, write: StatusWriter, **status: Any) -> Outcome:
        await write(stored, state="running", observedGeneration=stored.generation, message=None, **status)
        return Retry(self.poll_s)

    @abstractmethod
    async def _start(self, stored: StoredResource, write: StatusWriter) -> Outcome:
        """Prepare and start the run (``_started``), wait (``Retry``), or give up (``_not_started``)."""

    @abstractmethod
    async def _finish(self, stored: StoredResource, observation: JobObservation, write: StatusWriter) -> Outcome:
        """Record what a succeeded run made; ``succeeded``."""


STARTUP_ERRORS: Final = (PermanentRuntimeError, LegionError)

"""``JobController``: what trainings and packagings share — one run per spec generation, as a local job.

A look at a job object: ended for this generation → ``Done``; the spec changed since its run → the old run is
removed and the object goes back to ``scheduling``; not started → ``_start`` (the kind's own preparation); running →
look again after ``poll_s``; failed → ``failed`` with the exit code and the end of the log in ``reason`` and the
cause alone (the exit code, and the exception that ended a Python job) in ``message``; succeeded → ``_finish`` (the
kind's own bookkeeping: register the model, keep the package).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, Final

from legion.api.reconcile.outcomes import Done, Failed, Outcome, Retry, after
from legion.api.runtime.base import PermanentRuntimeError, TemporaryRuntimeError
from legion.api.runtime.jobs import JobKind, JobObservation, LocalJobs
from legion.api.storage import ResourceStore, StoredResource
from legion.core.errors import LegionError
from legion.core.resources import ENDED_JOB_STATES, JobStatus, PackagingResult, StatusPatch, TrainingResult


class JobController(ABC):
    kind: str
    job_kind: JobKind
    status_model: type[JobStatus]
    """The kind's status (``ModelTrainingStatus``, ``ModelPackagingStatus``), which the outcomes' patches are of."""
    products: str
    """The status field that lists what a run made (``artifacts``, ``results``); emptied when the spec changes."""
    deleting: StatusPatch | None = None

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

    async def converge(self, stored: StoredResource) -> Outcome:
        run_of = stored.status.get("observedGeneration")
        if run_of == stored.generation and stored.status.get("state") in ENDED_JOB_STATES:
            return Done()
        if run_of is not None and run_of != stored.generation:  # the spec changed: run it again
            if not await self.remove(stored.id):
                return Retry(self.poll_s)
            emptied: dict[str, Any] = {self.products: []}
            # The reset status is of the new generation already: a later look must not take the run for the old
            # one and remove it again (which would also forget what the kind noted for the new run's start).
            reset = StatusPatch(
                self.status_model(
                    state="scheduling", exit_code=None, process_id=None, message=None,
                    observed_generation=stored.generation, **emptied,
                )
            )  # fmt: skip
            # go on from the reset status; the loop writes the reset and this step's own patch as one
            return after(reset, await self._look(replace(stored, status=reset.apply(stored.status))))
        return await self._look(stored)

    async def _look(self, stored: StoredResource) -> Outcome:
        observation = await self.jobs.observe(stored.id, self.job_kind)
        if observation is None:
            return await self._start(stored)
        limits = observation.enforced_limits
        if observation.state == "running":
            running = self.status_model(state="running", process_id=observation.pid, enforced_limits=limits)
            return Retry(self.poll_s, StatusPatch(running))
        if observation.state == "failed":
            failed = self.status_model(
                state="failed",
                exit_code=observation.exit_code,
                reason=observation.reason,
                message=observation.cause,
                enforced_limits=limits,
            )
            return Failed(StatusPatch(failed))
        return await self._finish(stored, observation)

    def _not_started(self, stored: StoredResource, exc: Exception) -> Outcome:
        """The run could not start (a permanent reason): ``failed`` for this generation."""
        reason = exc.reason if isinstance(exc, PermanentRuntimeError) else getattr(exc, "detail", str(exc))
        failed = self.status_model(state="failed", reason=reason, observed_generation=stored.generation, message=None)
        return Failed(StatusPatch(failed))

    def _started(self, stored: StoredResource, made: Sequence[TrainingResult | PackagingResult] = ()) -> Outcome:
        """The run is started: ``running`` for this generation, with what it is known to make already."""
        products: dict[str, Any] = {self.products: list(made)} if made else {}
        running = self.status_model(state="running", observed_generation=stored.generation, message=None, **products)
        return Retry(self.poll_s, StatusPatch(running))

    @abstractmethod
    async def _start(self, stored: StoredResource) -> Outcome:
        """Prepare and start the run (``_started``), wait (``Retry``), or give up (``_not_started``)."""

    @abstractmethod
    async def _finish(self, stored: StoredResource, observation: JobObservation) -> Outcome:
        """Record what a succeeded run made: ``Done`` with ``succeeded`` (or ``Failed``)."""


STARTUP_ERRORS: Final = (PermanentRuntimeError, LegionError)

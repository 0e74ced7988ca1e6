"""What one reconcile step says happens next, and what it changes in the status: a value, never a write.

A controller returns an ``Outcome``; the loop (``legion.api.reconcile.loop``) alone writes the ``StatusPatch`` it
carries (``legion.core.resources.status``) and schedules the next look. So a controller reads the store and
drives a runtime, but never writes a status, and "failed" is said once: a ``Failed`` outcome whose patch sets the
kind's failed state. (The idea is kopf's: handler outcomes as values, the framework applying the patch.)

    return Retry(0.5, StatusPatch(ModelDeploymentStatus(state="Processing", replicas=1)))
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, runtime_checkable

from legion.api.storage import StoredResource
from legion.core.resources import StatusPatch


@dataclass(frozen=True, slots=True)
class Settled:
    """Converged; look again after the loop's ``resync_s`` (to notice what died)."""

    status: StatusPatch | None = None


@dataclass(frozen=True, slots=True)
class Retry:
    """Progressing, or a temporary failure: look again after ``delay_s``."""

    delay_s: float
    status: StatusPatch | None = None


@dataclass(frozen=True, slots=True)
class Failed:
    """A permanent failure (``status`` sets the failed state and its reason); not looked at again until the spec
    changes."""

    status: StatusPatch


@dataclass(frozen=True, slots=True)
class Done:
    """A job that has ended (either way) and is recorded; nothing more to do until the spec changes."""

    status: StatusPatch | None = None


@dataclass(frozen=True, slots=True)
class Gone:
    """Deleted; dropped from the schedule."""


Outcome = Settled | Retry | Failed | Done | Gone


class Controller(Protocol):
    """Converges the resources of one kind; the loop calls it, one resource at a time."""

    kind: str
    deleting: StatusPatch | None
    """The status shown while the resource's runtime parts are being removed (None: keep the status)."""

    async def converge(self, stored: StoredResource) -> Outcome:
        """One step towards the stored spec; the outcome carries what changes in the status."""
        ...

    async def remove(self, ident: str) -> bool:
        """Stop and remove what the runtime has of ``ident``; True once nothing is left."""
        ...


def after(patch: StatusPatch, outcome: Outcome) -> Outcome:
    """``outcome`` with ``patch`` written first: what a step that changed the status on its way says (one write)."""
    match outcome:
        case Failed(status):
            return Failed(patch.then(status))
        case Settled(status):
            return Settled(patch if status is None else patch.then(status))
        case Retry(delay_s, status):
            return Retry(delay_s, patch if status is None else patch.then(status))
        case Done(status):
            return Done(patch if status is None else patch.then(status))
    return outcome  # Gone: nothing left to write to


@runtime_checkable
class OnDemand(Protocol):
    """A controller that can be asked to run something now (a replica of a ``minReplicas: 0`` deployment)."""

    def demand(self, ident: str) -> bool:
        """Note the demand; True when it was not noted already (so the loop should look at ``ident`` now)."""
        ...

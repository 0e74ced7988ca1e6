"""What one reconcile step says happens next: a value, never an exception (after kopf's outcomes)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from legion.api.storage import StoredResource


@dataclass(frozen=True, slots=True)
class Settled:
    """Converged; look again after the loop's ``resync_s`` (to notice what died)."""


@dataclass(frozen=True, slots=True)
class Retry:
    """Progressing, or a temporary failure: look again after ``delay_s``."""

    delay_s: float


@dataclass(frozen=True, slots=True)
class Failed:
    """A permanent failure, written to the status; not looked at again until the spec changes."""

    reason: str


@dataclass(frozen=True, slots=True)
class Done:
    """A job that has ended (either way) and is recorded; nothing more to do until the spec changes."""


@dataclass(frozen=True, slots=True)
class Gone:
    """Deleted; dropped from the schedule."""


Outcome = Settled | Retry | Failed | Done | Gone

StatusWriter = Callable[..., Awaitable[None]]
"""``await write(stored, **status)``: store these status fields over the current ones (when anything differs)."""


class Controller(Protocol):
    """Converges the resources of one kind; the loop calls it, one resource at a time."""

    kind: str
    deleting_state: str | None
    """The status ``state`` shown while the resource's runtime parts are being removed (None: keep the state)."""

    async def converge(self, stored: StoredResource, write: StatusWriter) -> Outcome:
        """One step towards the stored spec; writes status through ``write``."""
        ...

    async def remove(self, ident: str) -> bool:
        """Stop and remove what the runtime has of ``ident``; True once nothing is left."""
        ...


def without_time(status: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in status.items() if k != "lastUpdatedTime"}

"""The ``Runtime`` protocol the reconcile loop drives, and what a runtime reports back.

A runtime converges one deployment at a time towards its spec and says what is there now; it never writes the
database (the reconcile loop does). Calls are idempotent: the loop calls ``apply_deployment`` again and again
until the observation matches the spec. Failures are values the loop understands:

- ``TemporaryRuntimeError(reason, retry_after_s)``: try again later (a port race, a replica still starting);
- ``PermanentRuntimeError(reason)``: retrying will not help (the model path does not exist, the model cannot
  load); the deployment is marked ``Failed`` with the reason until its spec changes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from legion.core.resources import EnforcedLimits, ModelDeploymentSpec


class TemporaryRuntimeError(Exception):
    """Not converged yet for a reason that may go away; retry after ``retry_after_s``."""

    def __init__(self, reason: str, retry_after_s: float = 1.0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry_after_s = retry_after_s


class PermanentRuntimeError(Exception):
    """Cannot converge with this spec; the reason goes into the deployment's status."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True, slots=True)
class DeploymentObservation:
    """What runs for one deployment right now."""

    replicas: int
    """Replicas that exist (starting or ready)."""
    available: int
    """Replicas that answer their readiness probe."""
    endpoints: tuple[str, ...] = ()
    """Base URLs of the ready replicas, for the gateway."""
    service_url: str | None = None
    """Where the deployment answers as a whole, when the runtime has such an address."""
    model_name: str | None = None
    """The name of the model the ready replicas serve, once one has answered."""
    model_version: str | None = None
    enforced_limits: EnforcedLimits | None = None
    """How each replica is held to the spec's resource limits (None: the runtime does not say)."""


class Runtime(Protocol):
    """What the reconcile loop needs of a place to run model servers."""

    name: str

    async def apply_deployment(self, deployment_id: str, spec: ModelDeploymentSpec) -> DeploymentObservation:
        """Move towards ``spec`` (start, replace or stop replicas) and report what is there now."""
        ...

    async def delete_deployment(self, deployment_id: str) -> bool:
        """Stop everything of the deployment; True once nothing is left."""
        ...

    async def observe_deployment(self, deployment_id: str) -> DeploymentObservation | None:
        """What runs for the deployment, or None if nothing does; changes nothing."""
        ...

    async def stop_all(self) -> bool:
        """Stop every replica of every deployment (the specs stay in the database); True once all are gone."""
        ...

    async def close(self) -> None:
        """Release what the runtime holds in this process (replicas keep running: a restart adopts them)."""
        ...

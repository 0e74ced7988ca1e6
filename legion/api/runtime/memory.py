"""``MemoryRuntime``: a runtime that runs nothing, for tests of everything above the runtime.

It implements the real ``Runtime`` protocol: replicas "start" and become available after ``start_calls``
further calls of ``apply_deployment`` (so tests see ``Processing`` before ``Ready``), can be made to fail, and can
lose replicas (``kill``) to exercise recovery.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from legion.api.runtime.base import DeploymentObservation, PermanentRuntimeError
from legion.core.resources import ModelDeploymentSpec


@dataclass(slots=True)
class _Replica:
    calls_to_ready: int


@dataclass(slots=True)
class _Deployment:
    replicas: list[_Replica] = field(default_factory=list)


class MemoryRuntime:
    """Deployments as counters in memory."""

    name = "memory"

    def __init__(self, start_calls: int = 1) -> None:
        self.start_calls = start_calls
        self.failures: dict[str, str] = {}
        """Deployment id -> reason: ``apply_deployment`` raises ``PermanentRuntimeError`` with it."""
        self.applied = 0
        self._deployments: dict[str, _Deployment] = {}

    def _observe(self, deployment: _Deployment, deployment_id: str) -> DeploymentObservation:
        ready = [r for r in deployment.replicas if r.calls_to_ready <= 0]
        endpoints = tuple(f"memory://{deployment_id}/{i}" for i in range(len(ready)))
        return DeploymentObservation(
            len(deployment.replicas), len(ready), endpoints, endpoints[0] if endpoints else None
        )

    async def apply_deployment(self, deployment_id: str, spec: ModelDeploymentSpec) -> DeploymentObservation:
        self.applied += 1
        if deployment_id in self.failures:
            raise PermanentRuntimeError(self.failures[deployment_id])
        deployment = self._deployments.setdefault(deployment_id, _Deployment())
        for replica in deployment.replicas:
            replica.calls_to_ready -= 1
        while len(deployment.replicas) < spec.min_replicas:
            deployment.replicas.append(_Replica(self.start_calls))
        del deployment.replicas[spec.min_replicas :]
        return self._observe(deployment, deployment_id)

    async def delete_deployment(self, deployment_id: str) -> bool:
        self._deployments.pop(deployment_id, None)
        return True

    async def observe_deployment(self, deployment_id: str) -> DeploymentObservation | None:
        deployment = self._deployments.get(deployment_id)
        return None if deployment is None else self._observe(deployment, deployment_id)

    async def stop_all(self) -> bool:
        self._deployments.clear()
        return True

    async def close(self) -> None:
        return None

    def kill(self, deployment_id: str, replicas: int = 1) -> None:
        """Lose replicas, as if their processes died."""
        deployment = self._deployments[deployment_id]
        del deployment.replicas[:replicas]

    def running(self) -> dict[str, int]:
        return {i: len(d.replicas) for i, d in self._deployments.items() if d.replicas}

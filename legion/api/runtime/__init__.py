"""Where ModelDeployment replicas (and later training and packaging jobs) run: one module per runtime behind the
``Runtime`` protocol of ``base``.

- ``memory.MemoryRuntime``: a fake that implements the real interface, for tests (as httpx ships MockTransport).
- ``local.LocalRuntime``: each replica is a ``legion serve`` process on a loopback port (the default);
  ``jobs.LocalJobs`` runs trainings and packagings the same way; both share ``processes`` (state directories,
  the child environment, the launcher; spawned, adopted, signalled) and run user code in the ``sandbox``
  (bubblewrap: the platform's data directory, keys and database hidden), each in a cgroup of its own that holds
  it to its ``resources.limits`` (``limits``: memory and CPU, where the machine lets the API make cgroups).
- later: containers (Docker or Podman) and Kubernetes; the Kubernetes client is imported only there.
"""

from legion.api.runtime.base import DeploymentObservation, PermanentRuntimeError, Runtime, TemporaryRuntimeError

__all__ = ["DeploymentObservation", "PermanentRuntimeError", "Runtime", "TemporaryRuntimeError"]

"""``LocalRuntime``: every replica of a ModelDeployment is a ``legion serve`` process on this machine.

The reconcile loop calls ``apply_deployment`` again and again; each call looks at what runs, starts what is
missing, stops what is extra or out of date, and returns at once (a replica that is still loading is reported as
not available, never waited for). ``spec.image`` is taken as a model path here: a Legion model directory, a
``.zip``, an MLflow model directory or a local package, relative to ``model_root``. A package that records the
model's own virtualenv (``envManager: virtualenv``) is served by that virtualenv's Python.

Why it is shaped this way:

- Replicas are detached (their own session, stdout and stderr appended to a log file, no pipes that could fill
  up), so they outlive the API process and a Ctrl-C of the API leaves them serving. They are spawned with
  ``os.posix_spawnp`` rather than ``subprocess.Popen``: a ``Popen`` object dropped while its child runs warns and
  is polled (reaped) behind our back by later ``Popen`` calls, which would lose the exit code that says "the model
  cannot be loaded" (8). Here a replica is a pid only; the runtime reaps its own children with ``waitpid`` and
  checks adopted ones through ``/proc``. Inheritable descriptors (a server's listening socket) are closed in the
  replica, as ``Popen(close_fds=True)`` would.
- Everything known about a deployment is in ``WORK_DIR/deployments/<id>/state.json`` (written to a temporary
  file, then renamed, after every change), so a new runtime over the same directory adopts what runs::

      {"version": 1, "specHash": "…", "modelPath": "/abs/model", "python": null, "nextReplica": 3,
       "failedReason": null, "properties": {"threshold": 0.7},
       "replicas": [{"number": 1, "pid": 4242, "url": "http://127.0.0.1:40311", "specHash": "…",
                     "modelPath": "/abs/model", "logOffset": 0, "startedAt": 1767000000.0,
                     "everReady": true, "failures": 0, "properties": {"threshold": 0.7},
                     "propertiesToken": "…"}]}

  A replica is adopted only if its pid is alive and ``/proc/<pid>/cmdline`` has ``legion``, ``serve`` and its
  model path, so a recycled pid is never taken for a replica (nor signalled).
- A replica runs in the ``sandbox`` under the launcher of ``processes.launch`` (which passes SIGTERM on to it):
  it reads its model path, writes only its scratch directory ``deployments/<id>/tmp-<number>`` and gets the
  allow-listed environment of ``processes.child_environment``; the platform's data directory is hidden from it.
- With a ``limits.Limiter`` each replica runs in a cgroup of its own that holds it to ``spec.resources.limits``
  (named in its state; removed when the replica is gone). A replica the kernel killed for its memory limit is
  reported so ("exceeded its memory limit 256Mi") when it dies, and counts as a failure like any death before
  readiness.
- The deployment's properties (``spec.properties``) are not part of what a replica is made of: a replica starts
  with them and, when they change, each running replica is sent the new values over loopback before it is
  reported available again (``runtime.properties``), so the gateway never routes to a replica holding old ones.
  Only the runtime holds a replica's properties token (in ``state.json``): no one else can change its values.
- A changed model path or spec replaces replicas as a rolling update: the old ones keep serving until as many new
  ones are ready. A replica that exits with 8 (the model cannot be loaded), or dies ``failure_limit`` times in a
  row before it was ever ready (running past ``start_timeout_s`` counts as dying), fails the deployment with the
  tail of its log; the failure sticks until the spec changes, the deployment is scaled to zero or deleted.

Usage::

    runtime = LocalRuntime(Path("~/.legion/runtime").expanduser())
    observation = await runtime.apply_deployment("income", ModelDeploymentSpec(image="./income-model"))
    ...  # call again until observation.available == spec.min_replicas; observation.endpoints are the replicas
    await runtime.delete_deployment("income")
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import hashlib
import json
import logging
import os
import secrets
import shutil
import sys
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Final

import httpx
import yaml
from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from legion.api.runtime.base import DeploymentObservation, PermanentRuntimeError
from legion.api.runtime.limits import Limiter, memory_exceeded, unit_prefix
from legion.api.runtime.processes import (
    LOG_SCAN_BYTES,
    LOG_TAIL_LINES,
    ProcessDirectory,
    child_environment,
    launch,
    runs_with,
    stop_process,
)
from legion.api.runtime.properties import DELIVERED, UNREACHABLE, Refused, full_values, new_token, push
from legion.api.runtime.properties import start_environment as properties_environment
from legion.api.runtime.sandbox import Mounts, Sandbox
from legion.core.errors import ModelFormatError
from legion.core.resources import ModelDeploymentSpec, ResourceRequirements
from legion.model import MANIFEST_NAME
from legion.model.package import package_python

log = logging.getLogger(__name__)

STATE_VERSION: Final = 1
LISTENING_PREFIX: Final = b"listening on "
READY_PATH: Final = "/v2/health/ready"
PROBE_TIMEOUT_S: Final = 1.0


class _StateModel(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class _Replica(_StateModel):
    number: int
    pid: int
    url: str | None = None
    spec_hash: str
    model_path: str
    log_offset: int
    """Size of the replica's log when this process started: its own lines come after."""
    started_at: float
    """Wall-clock seconds (it must mean the same to a runtime that adopts the replica)."""
    ever_ready: bool = False
    failures: int = 0
    """Deaths in a row of this replica slot before it became ready."""
    cgroup: str | None = None
    """The replica's cgroup (a directory name, see ``limits``), when it runs in one."""
    properties: dict[str, Any] | None = None
    """The deployment's property values this replica holds; None: not known (adopted from an older runtime)."""
    properties_token: str | None = None
    """What its ``PUT /api/model/properties`` takes; None: it was started without one."""


class _Deployment(_StateModel):
    version: int = STATE_VERSION
    spec_hash: str
    model_path: str
    python: str | None = None
    """The Python that runs ``-m legion serve`` (the package's virtualenv); None: the runtime's own."""
    next_replica: int = 1
    failed_reason: str | None = None
    properties: dict[str, Any] = {}
    """The deployment's property values (``spec.properties``) that every replica must hold."""
    replicas: list[_Replica] = []


class LocalRuntime:
    """Replicas as ``legion serve`` processes on loopback ports; state in ``work_dir`` so a restart adopts them.

    ``python`` runs ``-m legion serve`` (it must have Legion installed); ``host`` is the address replicas bind;
    a replica has ``start_timeout_s`` to become ready and ``stop_timeout_s`` to drain after SIGTERM before it is
    killed; ``failure_limit`` deaths in a row before readiness fail the deployment. Replicas run in ``sandbox``
    (bubblewrap by default), which also hides ``work_dir``, and, with a ``limiter``, each in a cgroup that holds it
    to the spec's ``resources.limits``.

        runtime = LocalRuntime(work_dir, model_root=Path.cwd())
        await runtime.apply_deployment("wine", ModelDeploymentSpec(image="models/wine.zip", min_replicas=2))
    """

    name = "local"

    def __init__(
        self,
        work_dir: Path,
        *,
        python: str = sys.executable,
        host: str = "127.0.0.1",
        model_root: Path | None = None,
        start_timeout_s: float = 120.0,
        stop_timeout_s: float = 30.0,
        failure_limit: int = 3,
        sandbox: Sandbox | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.python = python
        self.host = host
        self.model_root = (model_root or Path.cwd()).absolute()
        self.start_timeout_s = start_timeout_s
        self.stop_timeout_s = stop_timeout_s
        self.failure_limit = max(failure_limit, 1)
        self.sandbox = (sandbox or Sandbox()).hiding(work_dir)
        self.limiter = limiter or Limiter.off()
        self._unit_prefix = unit_prefix(work_dir)
        self._deployments = ProcessDirectory(work_dir / "deployments", _Deployment)

    # -- the Runtime protocol -----------------------------------------------------------------------------------

    async def apply_deployment(self, deployment_id: str, spec: ModelDeploymentSpec) -> DeploymentObservation:
        """Start, replace or stop replicas towards ``spec.min_replicas`` and report what runs now."""
        model_path = self._model_path(spec.image)
        python = self._python_for(model_path)
        spec_hash = self._spec_hash(spec, model_path, python)
        async with self._deployments.lock(deployment_id):
            state = self._load(deployment_id) or _Deployment(spec_hash=spec_hash, model_path=model_path, python=python)
            state.properties = dict(spec.properties)
            if spec.min_replicas == 0:
                state.failed_reason = None  # scaling to zero always converges, and lets a failed model retry later
            if state.spec_hash != spec_hash:
                state.spec_hash, state.model_path, state.failed_reason = spec_hash, model_path, None
                state.python = python
            elif state.failed_reason is not None:
                raise PermanentRuntimeError(state.failed_reason)
            try:
                ready = await self._converge(deployment_id, state, spec)
            finally:
                self._save(deployment_id, state)
            seen = _observation(state.replicas, ready, _manifest_identity(state.model_path))
            enforced = self.limiter.describe(spec.resources) if self.limiter.enabled else None
            return dataclasses.replace(seen, enforced_limits=enforced)

    async def delete_deployment(self, deployment_id: str) -> bool:
        """SIGTERM every replica, SIGKILL what is left after ``stop_timeout_s``; True once nothing is left."""
        async with self._deployments.lock(deployment_id):
            state = self._load(deployment_id)
            if state is None:
                return True
            await self._stop(deployment_id, state, state.replicas)
            if state.replicas:
                self._save(deployment_id, state)
                return False
            shutil.rmtree(self._directory(deployment_id))
            return True

    async def observe_deployment(self, deployment_id: str) -> DeploymentObservation | None:
        """Probe the replicas without starting, stopping, reaping or writing anything."""
        state = self._load(deployment_id)
        if state is None:
            return None
        alive: list[_Replica] = []
        for replica in state.replicas:
            running, _ = _liveness(replica, reap=False)
            if running:
                replica.url = replica.url or self._read_url(deployment_id, replica)
                alive.append(replica)
        return _observation(alive, await _probe_all(alive), _manifest_identity(state.model_path))

    async def close(self) -> None:
        """Forget in-memory state; the replicas keep serving and a new runtime over ``work_dir`` adopts them.

        Replicas are tracked by pid in the state files, not by handles, so nothing else needs releasing.
        """
        self._deployments.forget()

    async def stop_all(self) -> bool:
        """Delete every deployment in ``work_dir`` (for tests and for stopping a whole local installation)."""
        ids = self._deployments.ids()
        results = await asyncio.gather(*(self.delete_deployment(i) for i in ids))
        return all(results)

    # -- converging -----------------------------------------------------------------------------------------------

    async def _converge(
        self, deployment_id: str, state: _Deployment, spec: ModelDeploymentSpec
    ) -> dict[int, Identity | None]:
        """One step towards ``spec.min_replicas`` current replicas; returns the pids that answered ready (and their
        model)."""
        desired = spec.min_replicas
        restarts = self._reap(deployment_id, state, spec.resources)
        for replica in state.replicas:
            replica.url = replica.url or self._read_url(deployment_id, replica)
        ready = await _probe_all(state.replicas)
        refusal = await self._deliver(deployment_id, state, ready)
        current = [r for r in state.replicas if r.spec_hash == state.spec_hash]
        for replica in current:
            if replica.pid in ready and not replica.ever_ready:
                replica.ever_ready, replica.failures = True, 0
        now = time.time()
        overdue = [r for r in current if not r.ever_ready and now - r.started_at > self.start_timeout_s]
        if overdue:
            await self._stop(deployment_id, state, overdue, kill=True)
            for replica in overdue:
                why = f"did not become ready within {self.start_timeout_s:g} s"
                restarts += self._count_failure(deployment_id, state, replica, why)
        if state.failed_reason is not None:
            # Old replicas keep serving the previous spec; the failed one's siblings still loading go.
            starting = [r for r in current if r.pid not in ready and r in state.replicas]
            await self._stop(deployment_id, state, starting)
            raise PermanentRuntimeError(state.failed_reason)

        current = [r for r in state.replicas if r.spec_hash == state.spec_hash]
        while len(current) < desired:
            number, failures = restarts.pop(0) if restarts else (self._next_number(state), 0)
            current.append(self._spawn(deployment_id, state, (number, failures), spec.resources))
        self._save(deployment_id, state)
        extra = sorted(current, key=lambda r: r.number, reverse=True)[: max(len(current) - desired, 0)]
        # Roll: an old replica goes once a current one is ready to take its place.
        old = sorted(
            (r for r in state.replicas if r.spec_hash != state.spec_hash),
            key=lambda r: (r.pid in ready, r.number),
            reverse=True,
        )
        keep_old = max(desired - sum(r.pid in ready for r in current if r not in extra), 0)
        await self._stop(deployment_id, state, [*extra, *old[keep_old:]])
        if refusal is not None:
            raise PermanentRuntimeError(refusal)
        return ready

    async def _deliver(self, deployment_id: str, state: _Deployment, ready: dict[int, Identity | None]) -> str | None:
        """Send the deployment's property values to every ready replica that does not hold them yet; one that could
        not be reached leaves ``ready`` until a later look delivers them. Returns why a current replica refused
        them (the deployment then fails, its replicas keeping the values they had), else None."""
        behind = [r for r in state.replicas if r.pid in ready and r.url and r.properties != state.properties]
        if not behind:
            return None
        async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
            answers = await asyncio.gather(*(
                push(client, str(r.url), r.properties_token, full_values(r.model_path, state.properties))
                for r in behind
            ))  # fmt: skip
        refusal = None
        for replica, answer in zip(behind, answers, strict=True):
            if answer == DELIVERED:
                replica.properties = dict(state.properties)
                continue
            ready.pop(replica.pid)
            if isinstance(answer, Refused) and replica.spec_hash == state.spec_hash:
                refusal = f"replica {replica.number} refuses the properties: {answer.reason}"
            elif answer == UNREACHABLE:
                log.warning("replica %s of %s took no properties yet; trying again", replica.number, deployment_id)
        return refusal

    def _reap(self, deployment_id: str, state: _Deployment, resources: ResourceRequirements) -> list[tuple[int, int]]:
        """Drop dead replicas; returns (replica number, failures so far) of the slots to restart."""
        restarts: list[tuple[int, int]] = []
        for replica in list(state.replicas):
            running, exit_code = _liveness(replica, reap=True)
            if running:
                continue
            state.replicas.remove(replica)
            out_of_memory = self._release(replica) > 0
            if replica.spec_hash != state.spec_hash:
                continue  # an old replica being replaced: nothing to restart
            if replica.ever_ready:
                log.warning(
                    "replica %s of %s (pid %s) %s; starting it again",
                    replica.number, deployment_id, replica.pid,
                    self._memory_exceeded(resources) if out_of_memory else "exited",
                )  # fmt: skip
                restarts.append((replica.number, 0))
                continue
            if exit_code == ModelFormatError.exit_code:
                tail = self._log_tail(deployment_id, replica)
                why = f"cannot load the model (exit code {exit_code})"
                state.failed_reason = f"replica {replica.number} {why}; its log ends:\n{tail}"
                continue
            how = "exited" if exit_code is None else f"exited with code {exit_code}"
            if out_of_memory:
                how = self._memory_exceeded(resources)
            restarts += self._count_failure(deployment_id, state, replica, f"{how} before becoming ready")
        return restarts

    def _memory_exceeded(self, resources: ResourceRequirements) -> str:
        return memory_exceeded(self.limiter.describe(resources))

    def _release(self, replica: _Replica) -> int:
        """Remove the cgroup of a replica that is gone; how many of its processes the kernel killed for its memory
        limit."""
        if replica.cgroup is None:
            return 0
        cgroup = self.limiter.cgroup(replica.cgroup)
        kills = cgroup.oom_kills()
        cgroup.remove()
        return kills

    def _count_failure(
        self, deployment_id: str, state: _Deployment, replica: _Replica, why: str
    ) -> list[tuple[int, int]]:
        failures = replica.failures + 1
        if failures < self.failure_limit:
            log.warning(
                "replica %s of %s %s (%s of %s); starting it again",
                replica.number,
                deployment_id,
                why,
                failures,
                self.failure_limit,
            )
            return [(replica.number, failures)]
        tail = self._log_tail(deployment_id, replica)
        times = "" if failures == 1 else f" ({failures} times in a row)"
        state.failed_reason = f"replica {replica.number} {why}{times}; its log ends:\n{tail}"
        return []

    def _spawn(
        self, deployment_id: str, state: _Deployment, slot: tuple[int, int], resources: ResourceRequirements
    ) -> _Replica:
        """Start replica ``slot`` (its number, and its deaths in a row so far) in a cgroup of its own."""
        number, failures = slot
        directory = self._directory(deployment_id)
        directory.mkdir(parents=True, exist_ok=True)
        log_path = directory / f"replica-{number}.log"
        offset = log_path.stat().st_size if log_path.exists() else 0
        scratch = directory / f"tmp-{number}"
        scratch.mkdir(exist_ok=True)
        python = state.python or self.python
        argv = [python, "-m", "legion", "serve", state.model_path, "--host", self.host, "--port", "0"]
        mounts = Mounts(cwd=scratch, scratch=scratch, readable=(Path(state.model_path),))
        token = new_token()
        environment = child_environment(properties_environment(state.properties, token))
        command, env = self.sandbox.wrap(argv, mounts, environment)
        unit = f"{self._unit_prefix}-{deployment_id}-{number}-{secrets.token_hex(4)}"
        cgroup, _ = self.limiter.create(unit, resources)
        procs = cgroup.procs if cgroup else ()
        try:
            pid = launch(command, env, python=self.python, cwd=scratch, log_path=log_path, cgroups=procs)
        except PermanentRuntimeError:
            if cgroup is not None:
                cgroup.remove()
            raise
        replica = _Replica(
            number=number,
            pid=pid,
            spec_hash=state.spec_hash,
            model_path=state.model_path,
            log_offset=offset,
            started_at=time.time(),
            failures=failures,
            cgroup=unit if cgroup else None,
            properties=dict(state.properties),
            properties_token=token,
        )
        state.replicas.append(replica)
        log.info("started replica %s of %s (pid %s) for %s", number, deployment_id, pid, state.model_path)
        return replica

    async def _stop(
        self, deployment_id: str, state: _Deployment, replicas: Iterable[_Replica], *, kill: bool = False
    ) -> None:
        """Stop ``replicas`` concurrently and drop from ``state`` those that are gone."""
        replicas = list(replicas)
        if not replicas:
            return
        gone = await asyncio.gather(*(self._stop_one(r, kill=kill) for r in replicas))
        for replica, stopped in zip(replicas, gone, strict=True):
            if stopped:
                state.replicas.remove(replica)
                self._release(replica)
            else:
                log.error("replica %s of %s (pid %s) did not stop", replica.number, deployment_id, replica.pid)
        self._save(deployment_id, state)

    async def _stop_one(self, replica: _Replica, *, kill: bool) -> bool:
        # SIGKILL goes to the whole process group: a replica with several workers takes them along.
        running = functools.partial(_running, replica)
        return await stop_process(replica.pid, running, grace_s=self.stop_timeout_s, kill=kill, what="replica")

    # -- files ----------------------------------------------------------------------------------------------------

    def _model_path(self, image: str) -> str:
        path = Path(image).expanduser()
        path = path if path.is_absolute() else self.model_root / path
        if not path.exists():
            raise PermanentRuntimeError(f"image {image!r} is not a model path on this machine ({path} does not exist)")
        return str(path.absolute())

    def _python_for(self, model_path: str) -> str:
        """The Python that serves ``model_path``: its package's virtualenv when it records one, else the runtime's."""
        recorded = package_python(Path(model_path))
        if recorded is None:
            return self.python
        if not recorded.exists():
            raise PermanentRuntimeError(
                f"the package {model_path} runs in the model's virtualenv {recorded.parent.parent}, which is gone; "
                "run its packaging again to make it"
            )
        return str(recorded)

    def _spec_hash(self, spec: ModelDeploymentSpec, model_path: str, python: str) -> str:
        """What a replica is made of; replica counts and probe delays are not part of it."""
        resources = spec.resources.model_dump(mode="json", by_alias=True) if spec.resources else None
        fields = {"modelPath": model_path, "resources": resources, "python": python, "host": self.host}
        return hashlib.sha256(json.dumps(fields, sort_keys=True).encode()).hexdigest()[:16]

    def _directory(self, deployment_id: str) -> Path:
        return self._deployments.path(deployment_id)

    def _load(self, deployment_id: str) -> _Deployment | None:
        return self._deployments.load(deployment_id)

    def _save(self, deployment_id: str, state: _Deployment) -> None:
        self._deployments.save(deployment_id, state)

    @staticmethod
    def _next_number(state: _Deployment) -> int:
        number = state.next_replica
        state.next_replica += 1
        return number

    def replica_logs(self, deployment_id: str) -> list[tuple[str, Path, int]]:
        """``(label, log file, offset of this run)`` of each replica the deployment has now (for ``legion logs``)."""
        state = self._load(deployment_id)
        if state is None:
            return []
        return [
            (f"replica-{r.number}", self._log_path(deployment_id, r), r.log_offset)
            for r in sorted(state.replicas, key=lambda r: r.number)
        ]

    def _log_path(self, deployment_id: str, replica: _Replica) -> Path:
        return self._directory(deployment_id) / f"replica-{replica.number}.log"

    def _read_own_log(self, deployment_id: str, replica: _Replica, *, tail: bool) -> bytes:
        """This run's part of the replica log: its start, or (``tail``) its last ``LOG_SCAN_BYTES``."""
        try:
            with self._log_path(deployment_id, replica).open("rb") as file:
                start = replica.log_offset
                if tail:
                    start = max(start, file.seek(0, os.SEEK_END) - LOG_SCAN_BYTES)
                file.seek(start)
                return file.read(LOG_SCAN_BYTES)
        except FileNotFoundError:
            return b""

    def _read_url(self, deployment_id: str, replica: _Replica) -> str | None:
        text = self._read_own_log(deployment_id, replica, tail=False)
        complete = text[: text.rfind(b"\n") + 1]  # a line still being written is read next time
        for line in complete.splitlines():
            if line.startswith(LISTENING_PREFIX):
                return line.removeprefix(LISTENING_PREFIX).decode(errors="replace").strip()
        return None

    def _log_tail(self, deployment_id: str, replica: _Replica) -> str:
        text = self._read_own_log(deployment_id, replica, tail=True).decode(errors="replace")
        lines = text.rstrip().splitlines()[-LOG_TAIL_LINES:]
        return "\n".join(lines) if lines else "(the replica wrote nothing to its log)"


# -- processes (by pid) -------------------------------------------------------------------------------------------


def _liveness(replica: _Replica, *, reap: bool) -> tuple[bool, int | None]:
    """Whether the replica runs, and its exit code when it is our child that ended (None when unknown)."""
    try:
        if reap:
            pid, status = os.waitpid(replica.pid, os.WNOHANG)
            if pid:
                return False, os.waitstatus_to_exitcode(status)
        else:
            result = os.waitid(os.P_PID, replica.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if result is not None:
                killed = result.si_code != os.CLD_EXITED
                return False, -result.si_status if killed else result.si_status
    except ChildProcessError:
        # Not our child: started by an earlier runtime process and adopted; it runs if it is still that program.
        return _runs_replica(replica.pid, replica.model_path) is True, None
    # Our child, not ended. Its pid may still be another child's, reused after an earlier API process lost the
    # replica; but an empty command line only means that it is exiting, and the next look reaps it.
    return _runs_replica(replica.pid, replica.model_path) is not False, None


def _runs_replica(pid: int, model_path: str) -> bool | None:
    """Whether ``pid`` runs ``legion serve MODEL_PATH``; None when it has no command line (gone, exiting, zombie)."""
    return runs_with(pid, b"legion", b"serve", os.fsencode(model_path))


def _running(replica: _Replica) -> bool:
    """Whether the pid is still this replica (reaping it when it is our child that ended)."""
    return _liveness(replica, reap=True)[0]


Identity = tuple[str, str]
"""The model name and version a replica serves, from the ``Model-Name``/``Model-Version`` headers it answers with."""


async def _probe_all(replicas: Iterable[_Replica]) -> dict[int, Identity | None]:
    """The pids of the replicas whose readiness probe answers 200, each with the model it serves."""
    candidates = [r for r in replicas if r.url is not None]
    if not candidates:
        return {}
    async with httpx.AsyncClient(timeout=PROBE_TIMEOUT_S, trust_env=False) as client:
        answers = await asyncio.gather(*(_probe(client, f"{r.url}{READY_PATH}") for r in candidates))
    return {r.pid: identity for r, (ready, identity) in zip(candidates, answers, strict=True) if ready}


async def _probe(client: httpx.AsyncClient, url: str) -> tuple[bool, Identity | None]:
    try:
        answer = await client.get(url)
    except httpx.HTTPError:
        return False, None
    name, version = answer.headers.get("model-name"), answer.headers.get("model-version")
    return answer.status_code == 200, (name, version) if name and version else None


@functools.lru_cache(maxsize=256)
def _manifest_identity(model_path: str) -> Identity | None:
    """Name and version from the manifest at ``model_path`` (a model directory or a local package), if readable."""
    path = Path(model_path)
    for manifest in (path / MANIFEST_NAME, path / "model" / MANIFEST_NAME):
        try:
            data = yaml.safe_load(manifest.read_text(encoding="utf-8"))
        except (OSError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and data.get("name") and data.get("version"):
            return str(data["name"]), str(data["version"])
    return None


def _observation(
    alive: list[_Replica], ready: Mapping[int, Identity | None], configured: Identity | None = None
) -> DeploymentObservation:
    """What runs; the model is the one the newest ready replica serves, else the one the model path holds (so a
    deployment scaled to zero still says which model it is)."""
    serving = sorted((r for r in alive if r.pid in ready and r.url is not None), key=lambda r: r.number)
    endpoints = tuple(sorted(r.url for r in serving if r.url is not None))
    identity = next((ready[r.pid] for r in reversed(serving) if ready[r.pid] is not None), configured)
    return DeploymentObservation(
        replicas=len(alive),
        available=len(endpoints),
        endpoints=endpoints,
        service_url=endpoints[0] if endpoints else None,
        model_name=identity[0] if identity else None,
        model_version=identity[1] if identity else None,
    )

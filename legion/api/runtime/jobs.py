"""``LocalJobs``: each ModelTraining is a Python process on this machine, with its log, metrics and model in files.

The reconcile loop calls ``start_training`` (idempotent), then ``observe`` until the job has ended, and
``cancel`` / ``delete`` when the resource goes. Every call returns at once; nothing waits for a
training to finish. Getting the code (git) is the caller's job: ``start_training`` is given a ``source_dir``.

Everything about a training is in ``WORK_DIR/trainings/<id>/``::

    state.json      {"version": 1, "trainingId": "…", "pid": 4242, "startedAt": 1767000000.0,
                     "command": ["python", "train.py", "--alpha", "0.5"], "cwd": "/src", "outputDir": "/…/output",
                     "cancelled": false}         (written to a temporary file, then renamed)
    output/         $LEGION_OUTPUT_DIR: where the training saves its model (``legion.model.save``)
    metrics.jsonl   $LEGION_METRICS_FILE: one JSON line per ``legion.model.send_metric``
    job.log         stdout and stderr of the training
    exit_code       the training's exit code (negative: killed by that signal), written once it has ended

Why it is shaped this way:

- A training is detached like a ``LocalRuntime`` replica (own session, output appended to a file, spawned with
  ``os.posix_spawnp``), so it outlives the API process, and a new ``LocalJobs`` over the same directory adopts it:
  the pid in ``state.json`` counts only while ``/proc/<pid>/cmdline`` names this training's ``exit_code`` path.
- The exit code of a process that is not our child cannot be read from the kernel after an API restart, so the
  job records it itself: the spawned process is the launcher of ``processes.launch`` (standard library only, the
  same interpreter, outside the sandbox) that runs the training as its child, passes SIGTERM on to it, waits for
  it and writes ``exit_code`` atomically. A cancelled training's code (-15) is recorded; only a SIGKILL of the
  launcher loses it, and then the runtime records what ``waitpid`` says when the launcher was its own child, or
  reports the job as ended without an exit code.
- The training runs in the ``sandbox``: it writes only its working copy, ``output/``, ``metrics.jsonl`` and
  ``tmp/`` (its ``TMPDIR``); ``state.json`` and ``exit_code`` (which the runtime trusts) are out of its reach, as
  is everything the sandbox hides (the platform's data directory, this work directory).
- With a ``limits.Limiter`` a job runs in a cgroup of its own that holds it to ``spec.resources.limits`` (memory,
  CPU); its name is in ``state.json``, and once the job has ended the runtime reads whether the kernel killed it for
  its memory limit (the failure reason then says so), records that and removes the cgroup.
- ``args`` may hold the placeholder ``{output}``, replaced by the output directory (there is no shell, so no
  ``$LEGION_OUTPUT_DIR`` expansion): ``args: ["--output", "{output}"]`` runs ``train.py --output /…/output``.
- Hyper-parameters reach the script twice, as Legion and MLflow projects passed them: ``--<name> <value>``
  arguments after ``args``, and ``LEGION_HP_<NAME>`` variables (upper-cased, other characters than letters, digits
  and ``_`` turned into ``_``). ``envs`` are set as given. Of the API's own environment only an allow-list is
  passed on (``processes.child_environment``: never its ``LEGION_*`` settings); the variables the SDK reads are set
  for the training.

Usage::

    jobs = LocalJobs(Path("~/.legion/runtime").expanduser())
    await jobs.start_training("census-1", spec, source_dir=Path("examples/census_income"))
    observation = await jobs.observe("census-1")   # state "running", then "succeeded" or "failed"
    async for line in jobs.follow_log("census-1", follow=True):
        print(line)
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import os
import re
import secrets
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict
from pydantic.alias_generators import to_camel

from legion.api.runtime.base import PermanentRuntimeError, TemporaryRuntimeError
from legion.api.runtime.limits import Limiter, memory_exceeded, unit_prefix
from legion.api.runtime.processes import (
    LOG_SCAN_BYTES,
    LOG_TAIL_LINES,
    STATE_NAME,
    ProcessDirectory,
    child_environment,
    launch,
    runs_with,
    stop_process,
    write_atomically,
)
from legion.api.runtime.sandbox import Mounts, Sandbox
from legion.core.errors import NotFoundError
from legion.core.resources import EnforcedLimits, JobRunState, ModelTrainingSpec, ResourceRequirements
from legion.model import MANIFEST_NAME, PACKAGE_MANIFEST_NAME

log = logging.getLogger(__name__)

STATE_VERSION: Final = 1
LOG_NAME: Final = "job.log"
METRICS_NAME: Final = "metrics.jsonl"
EXIT_CODE_NAME: Final = "exit_code"
OUTPUT_NAME: Final = "output"
SCRATCH_NAME: Final = "tmp"
OUTPUT_PLACEHOLDER: Final = "{output}"
FOLLOW_INTERVAL_S: Final = 0.2
"""How often ``follow_log`` looks for new lines."""
LOG_LINE_CHARS: Final = 500
"""A log line quoted in a failure reason is cut at this many characters."""
TRACEBACK_START: Final = "Traceback (most recent call last):"
NO_MODEL_REASON: Final = "the training saved no model in $LEGION_OUTPUT_DIR"
NO_PACKAGE_REASON: Final = "the packager made no package in its output directory"
TRAININGS: Final = "trainings"
PACKAGINGS: Final = "packagings"
JobKind = Literal["trainings", "packagings"]


@dataclass(frozen=True, slots=True)
class JobObservation:
    """What one training is doing, or how it ended."""

    state: JobRunState
    exit_code: int | None = None
    """The training's exit code once it has ended (negative: killed by that signal); None while it runs or when
    it ended without recording one."""
    reason: str | None = None
    """Why it failed, with the end of its log."""
    metrics: dict[str, float] = field(default_factory=dict)
    """The last value of each metric sent so far."""
    model_dir: Path | None = None
    """The saved model (a directory with ``legion.model.yaml``) of a succeeded training."""
    pid: int | None = None
    """The process that runs (or ran) the training."""
    cause: str | None = None
    """The first part of ``reason``, without the log: ``exit code 1: ValueError: no column 'age'`` (the exit code
    and, when the job died of an uncaught Python exception, its line)."""
    enforced_limits: EnforcedLimits | None = None
    """How the runtime holds the job to its resource limits (None: it was not asked to)."""


class _Training(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")

    version: int = STATE_VERSION
    training_id: str
    pid: int
    started_at: float
    """Wall-clock seconds (it must mean the same to a runtime that adopts the job)."""
    command: list[str]
    cwd: str
    output_dir: str
    cancelled: bool = False
    cgroup: str | None = None
    """The job's cgroup (a directory name, see ``limits``) until it has ended and been looked at."""
    enforced_limits: EnforcedLimits | None = None
    memory_kills: int = 0
    """Processes of the job the kernel killed for exceeding its memory limit (read when the cgroup goes)."""


class LocalJobs:
    """ModelTrainings as detached processes, their files in ``work_dir/trainings/<id>/``.

    ``python`` runs the launcher and the training script (it needs Legion installed for ``legion.model``); a
    cancelled training has ``stop_timeout_s`` after SIGTERM before its process group is killed. Jobs run in
    ``sandbox`` (bubblewrap by default), which also hides ``work_dir``, and, with a ``limiter``, each in a cgroup
    that holds it to its ``resources.limits``.

        jobs = LocalJobs(work_dir)
        await jobs.start_training("wine-1", spec, source_dir=checkout)
        while (observation := await jobs.observe("wine-1")) and observation.state == "running":
            await asyncio.sleep(1)
    """

    def __init__(
        self,
        work_dir: Path,
        *,
        python: str = sys.executable,
        stop_timeout_s: float = 10.0,
        sandbox: Sandbox | None = None,
        limiter: Limiter | None = None,
    ) -> None:
        self.work_dir = work_dir
        self.python = python
        self.stop_timeout_s = stop_timeout_s
        self.sandbox = (sandbox or Sandbox()).hiding(work_dir)
        self.limiter = limiter or Limiter.off()
        self._unit_prefix = unit_prefix(work_dir)
        self._directories = {kind: ProcessDirectory(work_dir / kind, _Training) for kind in (TRAININGS, PACKAGINGS)}

    async def start_training(
        self, training_id: str, spec: ModelTrainingSpec, *, source_dir: Path, git_commit: str | None = None
    ) -> None:
        """Start ``python <entrypoint> <args> --<hp> <value>…`` in ``source_dir / spec.work_dir``.

        Does nothing if the training was started before (by this or an earlier ``LocalJobs``). Raises
        ``PermanentRuntimeError`` when the working directory or the entrypoint script does not exist.
        """
        cwd = (source_dir / spec.work_dir if spec.work_dir else source_dir).absolute()
        if not cwd.is_dir():
            raise PermanentRuntimeError(f"the training's working directory {cwd} does not exist")
        if not (cwd / spec.entrypoint).is_file():
            raise PermanentRuntimeError(f"the entrypoint {spec.entrypoint!r} is not a file in {cwd}")
        directory = self._directory(training_id)
        arguments = [a.replace(OUTPUT_PLACEHOLDER, str(directory / OUTPUT_NAME)) for a in spec.args]
        for name, value in spec.hyper_parameters.items():
            arguments += [f"--{name}", value]
        env = _environment(training_id, spec, directory, git_commit)
        await self._start(TRAININGS, training_id, cwd, [spec.entrypoint, *arguments], env, resources=spec.resources)

    async def start_packaging(
        self,
        packaging_id: str,
        argv: list[str],
        env: Mapping[str, str],
        *,
        inputs: Sequence[Path] = (),
        python: str | None = None,
        resources: ResourceRequirements | None = None,
    ) -> None:
        """Start ``python <argv>`` for a packaging (``{output}`` in ``argv`` is its output directory); its product
        is a directory holding ``PACKAGE_MANIFEST_NAME``. ``inputs`` are the paths it reads (the model it packs),
        readable in the sandbox; ``python`` runs it instead of the runtime's own (the model's virtualenv). Does
        nothing if it was started before."""
        directory = self._directory(packaging_id, PACKAGINGS)
        arguments = [a.replace(OUTPUT_PLACEHOLDER, str(directory / OUTPUT_NAME)) for a in argv]
        env = child_environment(env)
        await self._start(
            PACKAGINGS, packaging_id, None, arguments, env, tuple(inputs), python=python, resources=resources
        )

    async def _start(  # noqa: PLR0917  # one private step of the two start_* above
        self,
        kind: JobKind,
        job_id: str,
        cwd: Path | None,
        argv: list[str],
        env: dict[str, str],
        inputs: tuple[Path, ...] = (),
        *,
        python: str | None = None,
        resources: ResourceRequirements | None = None,
    ) -> None:
        directory = self._directory(job_id, kind)
        python = python or self.python
        async with self._directories[kind].lock(job_id):
            if (directory / STATE_NAME).exists():
                return
            if directory.exists():  # an earlier start that failed before it recorded a process
                shutil.rmtree(directory)
            output, scratch = directory / OUTPUT_NAME, directory / SCRATCH_NAME
            output.mkdir(parents=True)
            scratch.mkdir()
            (directory / METRICS_NAME).touch()
            cwd = cwd or scratch
            mounts = Mounts(cwd=cwd, scratch=scratch, writable=(output, directory / METRICS_NAME), readable=inputs)
            command, env = self.sandbox.wrap([python, *argv], mounts, env)
            unit = f"{self._unit_prefix}-{kind}-{job_id}-{secrets.token_hex(4)}"
            cgroup, enforced = self.limiter.create(unit, resources or ResourceRequirements())
            try:
                pid = launch(
                    command, env, python=self.python, cwd=cwd, log_path=directory / LOG_NAME,
                    exit_path=directory / EXIT_CODE_NAME, cgroups=cgroup.procs if cgroup else (),
                )  # fmt: skip
            except PermanentRuntimeError:
                if cgroup is not None:
                    cgroup.remove()
                raise
            state = _Training(
                training_id=job_id,
                pid=pid,
                started_at=time.time(),
                command=[python, *argv],
                cwd=str(cwd),
                output_dir=str(output),
                cgroup=unit if cgroup else None,
                enforced_limits=enforced if self.limiter.enabled else None,
            )
            self._directories[kind].save(job_id, state)
            log.info("started job %s (pid %s) in %s", directory.relative_to(self.work_dir), pid, cwd)

    async def observe(self, job_id: str, kind: JobKind = TRAININGS) -> JobObservation | None:
        """Whether the job runs, succeeded or failed, and its metrics; None if it was never started. A training's
        product is a model directory, a packaging's a package directory.

        An ended process that was this runtime's child is reaped here (and its exit code recorded).
        """
        directory = self._directory(job_id, kind)
        product = MANIFEST_NAME if kind == TRAININGS else PACKAGE_MANIFEST_NAME
        state = self._directories[kind].load(job_id)
        if state is None:
            return None
        running, exit_code = _check(directory, state)
        metrics = _read_metrics(directory / METRICS_NAME)
        limits = state.enforced_limits
        if running:
            return JobObservation("running", metrics=metrics, pid=state.pid, enforced_limits=limits)
        state = self._release_cgroup(kind, job_id, state)
        output = Path(state.output_dir)
        escape = _link_out_of(output) if exit_code == 0 else None
        if exit_code == 0 and escape is None and (output / product).is_file():
            return JobObservation(
                "succeeded", 0, metrics=metrics, model_dir=output, pid=state.pid, enforced_limits=limits
            )
        if escape is not None:
            why = f"the output holds {escape}, a link that leads out of it"
        elif exit_code == 0:
            why = f"{NO_MODEL_REASON if kind == TRAININGS else NO_PACKAGE_REASON} ({output})"
        elif exit_code is None:
            why = "the training ended without recording an exit code (its launcher was killed)"
        elif exit_code < 0:
            why = f"killed by {_signal_name(-exit_code)}"
        else:
            why = f"exit code {exit_code}"
        if state.memory_kills and exit_code != 0:
            why = f"{memory_exceeded(limits)} ({why})"
        if state.cancelled:
            why = f"cancelled ({why})"
        lines = _log_lines(directory / LOG_NAME)
        raised = _raised(lines) if exit_code != 0 else None
        if raised is not None:
            why = f"{why}: {raised}"
        reason = f"{why}; its log ends:\n{_tail(lines)}"
        return JobObservation("failed", exit_code, reason, metrics, pid=state.pid, cause=why, enforced_limits=limits)

    def _release_cgroup(self, kind: JobKind, job_id: str, state: _Training) -> _Training:
        """Once the job has ended: note whether the kernel killed a process of it for its memory limit, and remove
        its cgroup (kept while a straggler is still in it)."""
        if state.cgroup is None:
            return state
        cgroup = self.limiter.cgroup(state.cgroup)
        kills = cgroup.oom_kills()
        if not cgroup.remove():
            return state.model_copy(update={"memory_kills": kills})
        state = state.model_copy(update={"memory_kills": kills, "cgroup": None})
        self._directories[kind].save(job_id, state)
        return state

    async def cancel(self, job_id: str, kind: JobKind = TRAININGS) -> bool:
        """SIGTERM the job, SIGKILL its process group after ``stop_timeout_s``; True once it has stopped."""
        directory = self._directory(job_id, kind)
        jobs = self._directories[kind]
        async with jobs.lock(job_id):
            state = jobs.load(job_id)
            if state is None or not _check(directory, state)[0]:
                return True
            if not state.cancelled:
                state.cancelled = True
                jobs.save(job_id, state)
            running = functools.partial(_running, directory, state)
            return await stop_process(state.pid, running, grace_s=self.stop_timeout_s, what=f"job {job_id}")

    async def delete(self, job_id: str, kind: JobKind = TRAININGS) -> None:
        """Cancel the job and remove its directory (log, metrics, model and all).

        Raises ``TemporaryRuntimeError`` if its process did not stop; the directory is kept then.
        """
        if not await self.cancel(job_id, kind):
            raise TemporaryRuntimeError(f"the process of job {job_id} did not stop")
        directory = self._directory(job_id, kind)
        async with self._directories[kind].lock(job_id):
            state = self._directories[kind].load(job_id)
            if state is not None and state.cgroup is not None:
                self.limiter.cgroup(state.cgroup).remove()
            shutil.rmtree(directory, ignore_errors=True)
        self._directories[kind].forget(job_id)

    def log_path(self, training_id: str, kind: JobKind = TRAININGS) -> Path:
        """The file that receives the training's stdout and stderr."""
        return self._directory(training_id, kind) / LOG_NAME

    async def follow_log(self, training_id: str, *, follow: bool, kind: JobKind = TRAININGS) -> AsyncIterator[str]:
        """The lines of the training's log (without line ends); with ``follow``, new ones too until it ends.

        Raises ``NotFoundError`` for a training that was never started.

            async for line in jobs.follow_log("census-1", follow=True):
                print(line)
        """
        directory = self._directory(training_id, kind)
        what = "training" if kind == TRAININGS else "packaging"
        if self._directories[kind].load(training_id) is None:
            raise NotFoundError(f"{what} {training_id!r} has not started (no log yet)")
        try:
            file = (directory / LOG_NAME).open("rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"{what} {training_id!r} has no log") from exc
        pending = b""
        with file:
            while True:
                # Looked at before reading: whatever the training wrote before it ended is read below.
                ended = not follow or self._ended(training_id, kind)
                chunk = file.read()
                *lines, pending = (pending + chunk).split(b"\n")
                for line in lines:
                    yield line.decode(errors="replace")
                if ended:
                    if pending:
                        yield pending.decode(errors="replace")
                    return
                if not chunk:
                    await asyncio.sleep(FOLLOW_INTERVAL_S)

    # -- helpers ----------------------------------------------------------------------------------------------

    def _directory(self, job_id: str, kind: JobKind = TRAININGS) -> Path:
        return self._directories[kind].path(job_id)

    def _ended(self, job_id: str, kind: JobKind) -> bool:
        state = self._directories[kind].load(job_id)
        return state is None or not _check(self._directory(job_id, kind), state)[0]


# -- the training's environment -------------------------------------------------------------------------------


def _environment(training_id: str, spec: ModelTrainingSpec, directory: Path, git_commit: str | None) -> dict[str, str]:
    """The allow-listed part of the API's environment, then ``envs``, hyper-parameters and the SDK's variables."""
    sdk = {
        "LEGION_TRAINING_ID": training_id,
        "LEGION_METRICS_FILE": str(directory / METRICS_NAME),
        "LEGION_OUTPUT_DIR": str(directory / OUTPUT_NAME),
        "LEGION_MODEL_NAME": spec.model.name,
        "LEGION_MODEL_VERSION": spec.model.version,
    }
    if git_commit is not None:
        sdk["LEGION_GIT_COMMIT"] = git_commit
    return child_environment(
        {variable.name: variable.value for variable in spec.envs},
        {f"LEGION_HP_{_env_suffix(name)}": value for name, value in spec.hyper_parameters.items()},
        sdk,
    )


def _env_suffix(name: str) -> str:
    return re.sub(r"[^A-Z0-9_]", "_", name.upper())


# -- the process (by pid) -------------------------------------------------------------------------------------


def _check(directory: Path, state: _Training) -> tuple[bool, int | None]:
    """Whether the training runs, and its exit code once it has ended (None when none was recorded)."""
    exit_path = directory / EXIT_CODE_NAME
    try:
        pid, status = os.waitpid(state.pid, os.WNOHANG)
    except ChildProcessError:
        # Not our child (started by an earlier API process, or reaped before): it runs if it is still the launcher.
        return _runs_launcher(state.pid, exit_path) is True, _read_exit_code(exit_path)
    if pid == 0:
        # Our child, not ended; an empty command line means it is exiting, and the next look reaps it. Any other
        # command line is another child that got the pid after this one was reaped: the training has ended.
        if _runs_launcher(state.pid, exit_path) is not False:
            return True, None
        return False, _read_exit_code(exit_path)
    exit_code = _read_exit_code(exit_path)
    if exit_code is None:  # the launcher died before it could record the training's code: keep its own
        exit_code = os.waitstatus_to_exitcode(status)
        write_atomically(exit_path, str(exit_code))
    return False, exit_code


def _runs_launcher(pid: int, exit_path: Path) -> bool | None:
    """Whether ``pid`` is the launcher of the training; None when it has no command line (gone, exiting, zombie)."""
    return runs_with(pid, os.fsencode(str(exit_path)))


def _running(directory: Path, state: _Training) -> bool:
    return _check(directory, state)[0]


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# -- files ------------------------------------------------------------------------------------------------------


def _link_out_of(root: Path) -> Path | None:
    """A symbolic link under ``root`` that leads out of it, if any. The API reads and copies a job's product; a link
    made in the sandbox to a path hidden there (the API's keys) would be followed outside it."""
    base = root.resolve()
    for directory, subdirectories, files in os.walk(root):
        for name in (*subdirectories, *files):
            path = Path(directory, name)
            if path.is_symlink() and not path.resolve().is_relative_to(base):
                return path
    return None


def _read_exit_code(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (FileNotFoundError, ValueError):
        return None


def _read_metrics(path: Path) -> dict[str, float]:
    """The last value of each metric; a line still being written (or not JSON) is skipped."""
    metrics: dict[str, float] = {}
    try:
        lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    except FileNotFoundError:
        return metrics
    for line in lines:
        with contextlib.suppress(ValueError, TypeError, KeyError):
            record = json.loads(line)
            metrics[str(record["name"])] = float(record["value"])
    return metrics


def _log_lines(path: Path) -> list[str]:
    """The lines of the last ``LOG_SCAN_BYTES`` of a job's log."""
    try:
        with path.open("rb") as file:
            file.seek(max(file.seek(0, os.SEEK_END) - LOG_SCAN_BYTES, 0))
            text = file.read().decode(errors="replace")
    except FileNotFoundError:
        text = ""
    return text.rstrip().splitlines()


def _tail(lines: list[str]) -> str:
    tail = [line[:LOG_LINE_CHARS] for line in lines[-LOG_TAIL_LINES:]]
    return "\n".join(tail) if tail else "(the job wrote nothing to its log)"


def _raised(lines: list[str]) -> str | None:
    """The exception line of the last Python traceback in ``lines`` (``ValueError: no column 'age'``), if any.

    It is the first line after ``Traceback (most recent call last):`` that is not indented (the frames and the
    source lines are); read from the scanned part of the log, not its tail, because a deep traceback is longer
    than the tail. An uncaught exception is the cause a user looks for, so the reason names it first.
    """
    starts = [i for i, line in enumerate(lines) if line.startswith(TRACEBACK_START)]
    if not starts:
        return None
    for line in lines[starts[-1] + 1 :]:
        if line.strip() and not line[0].isspace():
            return line[:LOG_LINE_CHARS]
    return None

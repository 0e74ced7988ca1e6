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
  job records it itself: the spawned process is a ten-line launcher (``python -I -c _LAUNCHER``, standard library
  only, the same interpreter) that runs the training as its child, waits for it and writes ``exit_code``
  atomically. The launcher ignores SIGTERM, which reaches the training too (one process group), so a cancelled
  training's code (-15) is still recorded; only a SIGKILL of the launcher loses it, and then the runtime records
  what ``waitpid`` says when the launcher was its own child, or reports the job as ended without an exit code.
- ``args`` may hold the placeholder ``{output}``, replaced by the output directory (there is no shell, so no
  ``$LEGION_OUTPUT_DIR`` expansion): ``args: ["--output", "{output}"]`` runs ``train.py --output /…/output``.
- Hyper-parameters reach the script twice, as Legion and MLflow projects passed them: ``--<name> <value>``
  arguments after ``args``, and ``LEGION_HP_<NAME>`` variables (upper-cased, other characters than letters, digits
  and ``_`` turned into ``_``). ``envs`` are set as given. ``LEGION_*`` variables of the API's own environment
  (its settings, maybe secrets) are not passed on; the ones the SDK reads are set for the training.

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
import json
import logging
import os
import re
import shutil
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Final, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic.alias_generators import to_camel

from legion.api.runtime.base import PermanentRuntimeError, TemporaryRuntimeError
from legion.api.runtime.processes import (
    KILL_WAIT_S,
    LOG_SCAN_BYTES,
    LOG_TAIL_LINES,
    runs_with,
    signal_pid,
    spawn_detached,
    wait_until_gone,
    write_atomically,
)
from legion.core.errors import NotFoundError
from legion.core.resources import JobRunState, ModelTrainingSpec, is_valid_id
from legion.model import MANIFEST_NAME, PACKAGE_MANIFEST_NAME

log = logging.getLogger(__name__)

STATE_VERSION: Final = 1
STATE_NAME: Final = "state.json"
LOG_NAME: Final = "job.log"
METRICS_NAME: Final = "metrics.jsonl"
EXIT_CODE_NAME: Final = "exit_code"
OUTPUT_NAME: Final = "output"
OUTPUT_PLACEHOLDER: Final = "{output}"
FOLLOW_INTERVAL_S: Final = 0.2
"""How often ``follow_log`` looks for new lines."""
LOG_LINE_CHARS: Final = 500
"""A log line quoted in a failure reason is cut at this many characters."""
NO_MODEL_REASON: Final = "the training saved no model in $LEGION_OUTPUT_DIR"
NO_PACKAGE_REASON: Final = "the packager made no package in its output directory"
TRAININGS: Final = "trainings"
PACKAGINGS: Final = "packagings"
JobKind = Literal["trainings", "packagings"]

# Runs as ``python -I -c _LAUNCHER EXIT_CODE_PATH CWD SCRIPT ARGS...``: the training with the same interpreter,
# then its exit code written atomically. The SIGTERM handler (not SIG_IGN, so the training does not inherit it)
# keeps the launcher waiting while the training, in the same process group, handles the signal.
_LAUNCHER: Final = """\
import os, signal, subprocess, sys
signal.signal(signal.SIGTERM, lambda *_: None)
exit_path, cwd, *argv = sys.argv[1:]
try:
    code = subprocess.call([sys.executable, *argv], cwd=cwd)
except OSError as exc:
    print(f"legion: cannot start the training: {exc}", file=sys.stderr, flush=True)
    code = 127
with open(exit_path + ".tmp", "w") as file:
    file.write(str(code))
os.replace(exit_path + ".tmp", exit_path)
sys.exit(code if code >= 0 else 128 - code)
"""


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


class LocalJobs:
    """ModelTrainings as detached processes, their files in ``work_dir/trainings/<id>/``.

    ``python`` runs the launcher and the training script (it needs Legion installed for ``legion.model``); a
    cancelled training has ``stop_timeout_s`` after SIGTERM before its process group is killed.

        jobs = LocalJobs(work_dir)
        await jobs.start_training("wine-1", spec, source_dir=checkout)
        while (observation := await jobs.observe("wine-1")) and observation.state == "running":
            await asyncio.sleep(1)
    """

    def __init__(self, work_dir: Path, *, python: str = sys.executable, stop_timeout_s: float = 10.0) -> None:
        self.work_dir = work_dir
        self.python = python
        self.stop_timeout_s = stop_timeout_s
        self._locks: dict[Path, asyncio.Lock] = {}

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
        await self._start(directory, training_id, cwd, [spec.entrypoint, *arguments], env)

    async def start_packaging(self, packaging_id: str, argv: list[str], env: Mapping[str, str]) -> None:
        """Start ``python <argv>`` for a packaging (``{output}`` in ``argv`` is its output directory); its product
        is a directory holding ``PACKAGE_MANIFEST_NAME``. Does nothing if it was started before."""
        directory = self._directory(packaging_id, PACKAGINGS)
        arguments = [a.replace(OUTPUT_PLACEHOLDER, str(directory / OUTPUT_NAME)) for a in argv]
        base = {name: value for name, value in os.environ.items() if not name.startswith("LEGION_")}
        await self._start(directory, packaging_id, directory, arguments, {**base, **env})

    async def _start(self, directory: Path, job_id: str, cwd: Path, argv: list[str], env: dict[str, str]) -> None:
        async with self._lock(directory):
            if (directory / STATE_NAME).exists():
                return
            if directory.exists():  # an earlier start that failed before it recorded a process
                shutil.rmtree(directory)
            output = directory / OUTPUT_NAME
            output.mkdir(parents=True)
            (directory / METRICS_NAME).touch()
            pid = self._spawn(directory, cwd, argv, env)
            state = _Training(
                training_id=job_id,
                pid=pid,
                started_at=time.time(),
                command=[self.python, *argv],
                cwd=str(cwd),
                output_dir=str(output),
            )
            write_atomically(directory / STATE_NAME, state.model_dump_json(by_alias=True, indent=2))
            log.info("started job %s (pid %s) in %s", directory.relative_to(self.work_dir), pid, cwd)

    async def observe(self, job_id: str, kind: JobKind = TRAININGS) -> JobObservation | None:
        """Whether the job runs, succeeded or failed, and its metrics; None if it was never started. A training's
        product is a model directory, a packaging's a package directory.

        An ended process that was this runtime's child is reaped here (and its exit code recorded).
        """
        directory = self._directory(job_id, kind)
        product = MANIFEST_NAME if kind == TRAININGS else PACKAGE_MANIFEST_NAME
        state = _load(directory)
        if state is None:
            return None
        running, exit_code = _check(directory, state)
        metrics = _read_metrics(directory / METRICS_NAME)
        if running:
            return JobObservation("running", metrics=metrics, pid=state.pid)
        output = Path(state.output_dir)
        if exit_code == 0 and (output / product).is_file():
            return JobObservation("succeeded", 0, metrics=metrics, model_dir=output, pid=state.pid)
        if exit_code == 0:
            why = f"{NO_MODEL_REASON if kind == TRAININGS else NO_PACKAGE_REASON} ({output})"
        elif exit_code is None:
            why = "the training ended without recording an exit code (its launcher was killed)"
        elif exit_code < 0:
            why = f"killed by {_signal_name(-exit_code)}"
        else:
            why = f"exit code {exit_code}"
        if state.cancelled:
            why = f"cancelled ({why})"
        reason = f"{why}; its log ends:\n{_log_tail(directory / LOG_NAME)}"
        return JobObservation("failed", exit_code, reason, metrics, pid=state.pid)

    async def cancel(self, job_id: str, kind: JobKind = TRAININGS) -> bool:
        """SIGTERM the job's process group, SIGKILL it after ``stop_timeout_s``; True once it has stopped."""
        directory = self._directory(job_id, kind)
        async with self._lock(directory):
            state = _load(directory)
            if state is None or not _check(directory, state)[0]:
                return True
            if not state.cancelled:
                state.cancelled = True
                write_atomically(directory / STATE_NAME, state.model_dump_json(by_alias=True, indent=2))
            if not _signal(directory, state, signal.SIGTERM):
                return True
            if await _wait_ended(directory, state, self.stop_timeout_s):
                return True
            log.warning("job %s (pid %s) ignored SIGTERM; killing it", job_id, state.pid)
            if not _signal(directory, state, signal.SIGKILL):
                return True
            return await _wait_ended(directory, state, KILL_WAIT_S)

    async def delete(self, job_id: str, kind: JobKind = TRAININGS) -> None:
        """Cancel the job and remove its directory (log, metrics, model and all).

        Raises ``TemporaryRuntimeError`` if its process did not stop; the directory is kept then.
        """
        if not await self.cancel(job_id, kind):
            raise TemporaryRuntimeError(f"the process of job {job_id} did not stop")
        directory = self._directory(job_id, kind)
        async with self._lock(directory):
            shutil.rmtree(directory, ignore_errors=True)
        self._locks.pop(directory, None)

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
        if _load(directory) is None:
            raise NotFoundError(f"{what} {training_id!r} has not started (no log yet)")
        try:
            file = (directory / LOG_NAME).open("rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"{what} {training_id!r} has no log") from exc
        pending = b""
        with file:
            while True:
                # Looked at before reading: whatever the training wrote before it ended is read below.
                ended = not follow or self._ended(directory)
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
        if not is_valid_id(job_id):
            raise ValueError(f"{job_id!r} is not a valid job id")
        return self.work_dir / kind / job_id

    def _lock(self, directory: Path) -> asyncio.Lock:
        return self._locks.setdefault(directory, asyncio.Lock())

    @staticmethod
    def _ended(directory: Path) -> bool:
        state = _load(directory)
        return state is None or not _check(directory, state)[0]

    def _spawn(self, directory: Path, cwd: Path, argv: list[str], env: dict[str, str]) -> int:
        exit_path = directory / EXIT_CODE_NAME
        launcher = [self.python, "-I", "-c", _LAUNCHER, str(exit_path), str(cwd), *argv]
        return spawn_detached(launcher, env, directory / LOG_NAME)


# -- the training's environment -------------------------------------------------------------------------------


def _environment(training_id: str, spec: ModelTrainingSpec, directory: Path, git_commit: str | None) -> dict[str, str]:
    """The API's environment without its ``LEGION_*`` settings, then ``envs``, hyper-parameters and the SDK's."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("LEGION_")}
    env.update((variable.name, variable.value) for variable in spec.envs)
    env.update((f"LEGION_HP_{_env_suffix(name)}", value) for name, value in spec.hyper_parameters.items())
    env.update(
        LEGION_TRAINING_ID=training_id,
        LEGION_METRICS_FILE=str(directory / METRICS_NAME),
        LEGION_OUTPUT_DIR=str(directory / OUTPUT_NAME),
        LEGION_MODEL_NAME=spec.model.name,
        LEGION_MODEL_VERSION=spec.model.version,
    )
    if git_commit is not None:
        env["LEGION_GIT_COMMIT"] = git_commit
    return env


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


def _signal(directory: Path, state: _Training, signum: int) -> bool:
    """Send ``signum`` to the training's process group if it still runs; False when it has ended."""
    return _check(directory, state)[0] and signal_pid(state.pid, signum, group=True)


async def _wait_ended(directory: Path, state: _Training, timeout_s: float) -> bool:
    return await wait_until_gone(lambda: _check(directory, state)[0], timeout_s)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


# -- files ------------------------------------------------------------------------------------------------------


def _load(directory: Path) -> _Training | None:
    path = directory / STATE_NAME
    try:
        return _Training.model_validate_json(path.read_bytes())
    except FileNotFoundError:
        return None
    except ValidationError as exc:
        raise PermanentRuntimeError(f"the training state {path} cannot be read: {exc}") from exc


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


def _log_tail(path: Path) -> str:
    try:
        with path.open("rb") as file:
            file.seek(max(file.seek(0, os.SEEK_END) - LOG_SCAN_BYTES, 0))
            text = file.read().decode(errors="replace")
    except FileNotFoundError:
        text = ""
    lines = [line[:LOG_LINE_CHARS] for line in text.rstrip().splitlines()[-LOG_TAIL_LINES:]]
    return "\n".join(lines) if lines else "(the training wrote nothing to its log)"

"""Process handling shared by the local runtimes (model server replicas in ``local``, training and packaging jobs
in ``jobs``): the plumbing both need, written once.

Both start user code as detached processes, must recognise them again after an API restart without ever touching
a recycled pid, stop them with a deadline, and keep their state in files written atomically:

- ``ProcessDirectory``: ``root/<id>/state.json`` per deployment or job (a pydantic model), with a lock per id;
- ``child_environment``: the environment user code starts with, built from an allow-list of the API's own
  variables (never its ``LEGION_*`` settings or secrets), then what the runtime sets;
- ``launch``: user code (already wrapped by the ``sandbox``) started under a ten-line launcher that passes SIGTERM
  on to the program (bubblewrap does not) and, for jobs, records its exit code;
- ``stop_process``: SIGTERM, then SIGKILL of the process group after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Final, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from legion.api.runtime.base import PermanentRuntimeError
from legion.core.resources import is_valid_id

log = logging.getLogger(__name__)

POLL_INTERVAL_S: Final = 0.05
KILL_WAIT_S: Final = 5.0
"""How long a SIGKILLed process may take to disappear before it is reported as left over."""
LOG_TAIL_LINES: Final = 20
LOG_SCAN_BYTES: Final = 64 * 1024
RESET_SIGNALS: Final = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGPIPE, signal.SIGXFSZ)


def runs_with(pid: int, *arguments: bytes) -> bool | None:
    """Whether ``pid``'s command line holds every one of ``arguments``; None when it has no command line (gone,
    exiting, zombie). Without /proc the pid's existence is all there is to check. Both runtimes use it so that a
    recycled pid is never adopted or signalled."""
    if not Path("/proc/self").is_dir():
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return True
        return True
    try:
        args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return None
    if args == [b""]:
        return None
    return all(argument in args for argument in arguments)


def inheritable_fds() -> list[int]:
    """Descriptors a spawned replica would inherit (a server's listening socket is one): they are closed there."""
    fds: list[int] = []
    with contextlib.suppress(OSError):
        for name in os.listdir("/proc/self/fd" if Path("/proc/self/fd").is_dir() else "/dev/fd"):
            fd = int(name)
            with contextlib.suppress(OSError):
                if fd > 2 and os.get_inheritable(fd):
                    fds.append(fd)
    return fds


def spawn_detached(argv: list[str], env: Mapping[str, str], log_path: Path) -> int:
    """Start ``argv`` in a session of its own, stdin from /dev/null, stdout and stderr appended to ``log_path``,
    with default signal handling and none of this process's inheritable descriptors; its pid.

    Raises ``PermanentRuntimeError`` when the program cannot be started.
    """
    actions: list[tuple[int | str, ...]] = [
        *((os.POSIX_SPAWN_CLOSE, fd) for fd in inheritable_fds()),
        (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
        (os.POSIX_SPAWN_OPEN, 1, str(log_path), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600),
        (os.POSIX_SPAWN_DUP2, 1, 2),
    ]
    try:
        return os.posix_spawnp(
            argv[0], argv, env, file_actions=actions, setsid=True, setsigdef=RESET_SIGNALS, setsigmask=()
        )
    except OSError as exc:
        raise PermanentRuntimeError(f"cannot start {argv[0]!r}: {exc.strerror or exc}") from exc


def signal_pid(pid: int, signum: int, *, group: bool = False) -> bool:
    """Send ``signum`` to ``pid`` (to its whole group when it leads one and ``group``); False when it is gone.

    Callers check first that the pid is still theirs (``runs_with``)."""
    try:
        if group and os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        return False
    return True


async def wait_until_gone(running: Callable[[], bool], timeout_s: float) -> bool:
    """Poll ``running`` until it is False (True) or ``timeout_s`` passes (False)."""
    deadline = time.monotonic() + timeout_s
    while running():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(POLL_INTERVAL_S)
    return True


def write_atomically(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` so that a reader sees the old or the new content, never a part."""
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as file:
            file.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


# -- state directories --------------------------------------------------------------------------------------------

STATE_NAME: Final = "state.json"
StateT = TypeVar("StateT", bound=BaseModel)


class ProcessDirectory(Generic[StateT]):
    """One directory per deployment or job under ``root``, its state in ``<id>/state.json`` (camelCase JSON,
    replaced atomically), and an ``asyncio.Lock`` per id that serialises the changes to it.

        deployments = ProcessDirectory(work_dir / "deployments", DeploymentState)
        async with deployments.lock("wine"):
            state = deployments.load("wine") or DeploymentState(...)
            deployments.save("wine", state)
    """

    def __init__(self, root: Path, state_type: type[StateT]) -> None:
        self.root = root
        self.state_type = state_type
        self._locks: dict[str, asyncio.Lock] = {}

    def path(self, ident: str) -> Path:
        """The directory of ``ident``; ``ValueError`` for an id that could name another path."""
        if not is_valid_id(ident):
            raise ValueError(f"{ident!r} is not a valid id")
        return self.root / ident

    def lock(self, ident: str) -> asyncio.Lock:
        return self._locks.setdefault(ident, asyncio.Lock())

    def forget(self, ident: str | None = None) -> None:
        """Drop the lock of ``ident`` (of every id when None) once nothing of it is left to guard."""
        if ident is None:
            self._locks.clear()
        else:
            self._locks.pop(ident, None)

    def load(self, ident: str) -> StateT | None:
        """The state of ``ident``, or None when it has none; ``PermanentRuntimeError`` when it cannot be read."""
        path = self.path(ident) / STATE_NAME
        try:
            return self.state_type.model_validate_json(path.read_bytes())
        except FileNotFoundError:
            return None
        except ValidationError as exc:
            raise PermanentRuntimeError(f"the runtime state {path} cannot be read: {exc}") from exc

    def save(self, ident: str, state: StateT) -> None:
        directory = self.path(ident)
        directory.mkdir(parents=True, exist_ok=True)
        write_atomically(directory / STATE_NAME, state.model_dump_json(by_alias=True, indent=2))

    def ids(self) -> list[str]:
        """Every id that has a state file, sorted."""
        found = self.root.glob(f"*/{STATE_NAME}") if self.root.is_dir() else ()
        return sorted(p.parent.name for p in found if is_valid_id(p.parent.name))


# -- the environment of user code ---------------------------------------------------------------------------------

PASSED_VARIABLES: Final = frozenset(
    {"PATH", "LANG", "LANGUAGE", "TZ", "HOME", "USER", "LOGNAME", "TMPDIR", "PYTHONPATH", "VIRTUAL_ENV",
     "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
     "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE"}
)  # fmt: skip
"""Variables of the API's environment that user code gets (with every ``LC_*``); anything else (its ``LEGION_*``
settings, tokens, database URLs, cloud credentials) stays with the API."""


def child_environment(*layers: Mapping[str, str], environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The environment of a training, packaging or replica: the allow-listed part of ``environ``, then each of
    ``layers`` in order (the runtime's own variables last, so that they win).

        env = child_environment({"CUSTOM": "1"}, {"LEGION_OUTPUT_DIR": "/jobs/x/output"})
    """
    env = {name: value for name, value in environ.items() if name in PASSED_VARIABLES or name.startswith("LC_")}
    for layer in layers:
        env.update(layer)
    return env


# -- starting and stopping user code ------------------------------------------------------------------------------

# Runs as ``python -I -c LAUNCHER EXIT_PATH CWD CGROUPS ARGV...``: ARGV (the program, or bubblewrap running it) as
# a child in CWD, moved before it starts into the cgroups whose ``cgroup.procs`` files CGROUPS lists (joined by
# os.pathsep; "-": none), so that the launcher itself stays out of the limits and can always record the
# exit code; that exit code written atomically to EXIT_PATH ("-": not written) and returned. SIGTERM and SIGINT are
# passed to the program: to the child, or under bubblewrap (which does not pass signals on) to the first process
# below it that is not bubblewrap. bubblewrap reports a program killed by signal N as 128+N; it is recorded as -N,
# as for a program run directly.
_LAUNCHER: Final = """\
import os, signal, subprocess, sys
exit_path, cwd, cgroups, *argv = sys.argv[1:]
child = None
def join():
    for procs in cgroups.split(os.pathsep) if cgroups != "-" else ():
        with open(procs, "w") as file:
            file.write(str(os.getpid()))
sandboxed = os.path.basename(argv[0]) == "bwrap"
def program(pid):
    while pid:
        try:
            with open(f"/proc/{pid}/comm") as file:
                if file.read().strip() != "bwrap":
                    return pid
            with open(f"/proc/{pid}/task/{pid}/children") as file:
                pid = int((file.read().split() or ["0"])[0])
        except (OSError, ValueError):
            return None
    return None
def forward(signum, frame):
    target = program(child.pid) if child else None
    if target:
        try:
            os.kill(target, signum)
        except ProcessLookupError:
            pass
signal.signal(signal.SIGTERM, forward)
signal.signal(signal.SIGINT, forward)
try:
    child = subprocess.Popen(argv, cwd=cwd, preexec_fn=join if cgroups != "-" else None)
    code = child.wait()
except (OSError, subprocess.SubprocessError) as exc:
    print(f"legion: cannot start {argv[0]}: {exc}", file=sys.stderr, flush=True)
    code = 127
if sandboxed and 128 < code <= 128 + 64:
    code = 128 - code
if exit_path != "-":
    with open(exit_path + ".tmp", "w") as file:
        file.write(str(code))
    os.replace(exit_path + ".tmp", exit_path)
sys.exit(code if code >= 0 else 128 - code)
"""


def launch(
    argv: list[str],
    env: Mapping[str, str],
    *,
    python: str,
    cwd: Path,
    log_path: Path,
    exit_path: Path | None = None,
    cgroups: Sequence[Path] = (),
) -> int:
    """Start ``argv`` detached (``spawn_detached``) under the launcher, with ``python``; the launcher's pid.
    ``cgroups`` are the ``cgroup.procs`` files of the cgroups the program runs in (``limits.Cgroup.procs``).

    Its command line holds ``argv`` and ``exit_path``, which is what ``runs_with`` recognises it by.
    """
    joined = os.pathsep.join(str(path) for path in cgroups) or "-"
    launcher = [python, "-I", "-c", _LAUNCHER, str(exit_path) if exit_path else "-", str(cwd), joined, *argv]
    return spawn_detached(launcher, env, log_path)


async def stop_process(
    pid: int, running: Callable[[], bool], *, grace_s: float, kill: bool = False, what: str = "process"
) -> bool:
    """SIGTERM ``pid`` (a launcher passes it to its program), SIGKILL its whole process group if it still runs
    after ``grace_s`` (at once with ``kill``); True once it is gone.

    ``running`` says whether ``pid`` is still the process meant (see ``runs_with``); nothing is signalled otherwise.
    """
    if not kill:
        if not (running() and signal_pid(pid, signal.SIGTERM)):
            return True
        if await wait_until_gone(running, grace_s):
            return True
        log.warning("%s (pid %s) ignored SIGTERM; killing it", what, pid)
    if not (running() and signal_pid(pid, signal.SIGKILL, group=True)):
        return True
    return await wait_until_gone(running, KILL_WAIT_S)

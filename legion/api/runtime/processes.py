"""Process handling shared by the local runtimes (model server replicas in ``local``, training jobs in ``jobs``).

Both start detached processes, must recognise them again after an API restart without ever touching a recycled
pid, signal them (or their process group), wait for them to go with a deadline, and keep their state in files
written atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import tempfile
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

from legion.api.runtime.base import PermanentRuntimeError

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

"""``Sandbox``: user code (trainings, packagings, model replicas) runs in bubblewrap, away from the control plane.

The local runtimes start user code as the API's own OS user; without a sandbox a training could read the API's
keys (and sign an admin token with them), its database (every logged prediction) and every other job's files. In
the sandbox (``bwrap``, Debian's ``bubblewrap``) a program sees:

- the host's file system **read-only** (``--ro-bind / /``): the system, the Python environment, its own code;
- **nothing** of the ``hidden`` paths — the platform's data directory (database, keys, logs, stored models and
  packages, other jobs' files), the runtime's work directory, a database file kept elsewhere: an empty tmpfs is
  mounted over a directory, ``/dev/null`` over a file;
- **readable again** only the inputs its runtime names (the model or package a replica serves, the model a
  packaging packs), and **writable** only what it names (a job's working copy, output directory and metrics file,
  the run's scratch directory, which is also its ``TMPDIR`` and ``HOME``);
- its own pid namespace (it cannot see or signal the API or other jobs, nor reach their files through
  ``/proc/<pid>/root``), its own IPC namespace, no capabilities (root keeps none either) and no new privileges;
  the host's network (replicas listen on loopback; a training may fetch data).

The environment is an allow-list (``processes.child_environment``), built by the runtimes.

Without a usable bubblewrap (``bwrap`` not on PATH, or unable to make namespaces here) the runtimes refuse to start
user code: ``check()`` raises a ``PermanentRuntimeError`` that says why, and the training, packaging or deployment
fails with it. ``Sandbox.off()`` is the documented, unsafe opt-out (``LEGION_API_SANDBOX=false``, or ``legion api
--dev`` on a machine without bubblewrap): user code then runs unconfined, as the API's user.

    sandbox = Sandbox(hidden=(data_dir,))
    sandbox.check()
    argv, env = sandbox.wrap([python, "train.py"], Mounts(cwd=src, scratch=tmp, writable=(out,)), env)
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from legion.api.runtime.base import PermanentRuntimeError

PROBE_TIMEOUT_S: Final = 30.0
INSTALL_HINT: Final = (
    "install bubblewrap (Debian: apt-get install bubblewrap), or switch the sandbox off with "
    "LEGION_API_SANDBOX=false (unsafe: user code then runs as the API's user, with its files)"
)


@dataclass(frozen=True, slots=True)
class Mounts:
    """What one run of user code needs besides the read-only host."""

    cwd: Path
    """Where it starts."""
    scratch: Path
    """A writable directory of its own: its ``TMPDIR`` and ``HOME`` (created by the runtime)."""
    writable: tuple[Path, ...] = ()
    """Directories and files it may write (existing ones)."""
    readable: tuple[Path, ...] = ()
    """Inputs it reads that may lie in a hidden path (a model in the platform's store)."""


@dataclass(frozen=True, slots=True)
class Sandbox:
    """How the local runtimes confine user code; ``program`` None runs it unconfined (unsafe)."""

    hidden: tuple[Path, ...] = ()
    """Paths user code must not see (directories or files); the runtimes never copy user data out of them either."""
    shared: tuple[Path, ...] = ()
    """Directories inside ``hidden`` ones from which inputs may be made readable (the model and package stores)."""
    program: str | None = "bwrap"
    """The bubblewrap executable (looked up on PATH); None: no sandbox."""

    @classmethod
    def off(cls, hidden: tuple[Path, ...] = ()) -> Sandbox:
        """No sandbox: user code runs as the API's user and sees what it sees (for a single-user laptop only).
        ``hidden`` still keeps the runtimes from copying data out of those paths."""
        return cls(hidden=hidden, program=None)

    def hiding(self, *paths: Path) -> Sandbox:
        """The same sandbox, hiding ``paths`` too."""
        return Sandbox((*self.hidden, *paths), self.shared, self.program)

    def check_source(self, path: Path, what: str) -> None:
        """Refuse (``PermanentRuntimeError``) to read user data from ``path`` when it is, holds or lies in a hidden
        path (after links are followed): a link swapped in after the API checked the path would otherwise make the
        API copy its own keys into a job."""
        resolved = path.resolve()
        for hidden in _existing(self.hidden):
            if resolved.is_relative_to(hidden) or hidden.is_relative_to(resolved):
                raise PermanentRuntimeError(f"{what} {path} leads into the platform's own data ({hidden})")

    def check(self) -> None:
        """Raise ``PermanentRuntimeError`` when user code cannot be isolated here (and the sandbox is not off)."""
        if self.program is not None:
            problem = _unusable(self.program)
            if problem is not None:
                raise PermanentRuntimeError(f"user code cannot be isolated: {problem}; {INSTALL_HINT}")

    def wrap(self, argv: list[str], mounts: Mounts, env: Mapping[str, str]) -> tuple[list[str], dict[str, str]]:
        """``argv`` as run in the sandbox, and ``env`` with ``TMPDIR`` and ``HOME`` in the scratch directory.

        Raises ``PermanentRuntimeError`` (see ``check``)."""
        self.check()
        for path in mounts.readable:
            self._check_input(path)
        if self.program is None:
            return list(argv), dict(env)
        bwrap = shutil.which(self.program)
        assert bwrap is not None  # checked
        scratch = mounts.scratch.resolve()
        command = [bwrap, "--ro-bind", "/", "/", "--dev", "/dev", "--proc", "/proc"]
        command += ["--unshare-pid", "--unshare-ipc", "--cap-drop", "ALL", "--die-with-parent"]
        hidden = _existing(self.hidden)
        hidden = [h for h in hidden if not any(h != other and h.is_relative_to(other) for other in hidden)]
        binds = [("--ro-bind", p) for p in _existing(mounts.readable)]
        binds += [("--bind", p) for p in _existing((*mounts.writable, scratch, mounts.cwd))]
        command += _mounts(hidden, binds)
        # A bind brings back what it holds from the host: hide again what lies inside one (a data directory
        # inside a working copy), then bring back the binds inside that.
        again = [h for h in hidden if any(h != b and h.is_relative_to(b) for _, b in binds)]
        command += _mounts(again, [(o, b) for o, b in binds if any(b.is_relative_to(h) for h in again)])
        command += ["--chdir", str(mounts.cwd.resolve()), "--"]
        return [*command, *argv], {**env, "TMPDIR": str(scratch), "HOME": str(scratch)}

    def _check_input(self, path: Path) -> None:
        """An input may lie in a hidden path only in a ``shared`` store (one that holds a hidden path is fine: what
        it holds is hidden again)."""
        resolved = path.resolve()
        if any(resolved.is_relative_to(store.resolve()) for store in self.shared):
            return
        for hidden in _existing(self.hidden):
            if resolved.is_relative_to(hidden):
                raise PermanentRuntimeError(f"the input {path} leads into the platform's own data ({hidden})")


def _mounts(hidden: list[Path], binds: list[tuple[str, Path]]) -> list[str]:
    arguments: list[str] = []
    for path in hidden:
        arguments += ["--tmpfs", str(path)] if path.is_dir() else ["--ro-bind", "/dev/null", str(path)]
    for option, path in binds:
        arguments += [option, str(path), str(path)]
    return arguments


def _existing(paths: tuple[Path, ...]) -> list[Path]:
    """``paths`` resolved (bubblewrap mounts on real paths), without the missing ones, each once, in order."""
    resolved = [path.resolve() for path in paths]
    return [path for index, path in enumerate(resolved) if path.exists() and path not in resolved[:index]]


@functools.lru_cache(maxsize=4)
def _unusable(program: str) -> str | None:
    """Why ``program`` cannot sandbox here (None when it can): missing, or failing a trial run."""
    bwrap = shutil.which(program)
    if bwrap is None:
        return f"{program!r} (bubblewrap) is not installed"
    trial = [bwrap, "--ro-bind", "/", "/", "--unshare-pid", "--cap-drop", "ALL", "--", "true"]
    try:
        done = subprocess.run(trial, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{bwrap} does not run: {exc}"
    if done.returncode != 0:
        return f"{bwrap} cannot make a sandbox here: {done.stderr.strip() or f'exit code {done.returncode}'}"
    return None

"""The code and data a training starts from, made ready in a directory of its own.

``prepare_source`` copies a local folder (``localPath``) or clones a git ``Connection`` at the training's
``reference`` (else the connection's), and returns the commit it checked out; ``bind_data`` then copies each
``data`` binding from a ``local`` connection into the working directory. Both run blocking commands and file copies,
so the reconcile loop calls them in a worker thread.

Failures are ``PermanentRuntimeError`` with a reason a user can act on (the repository or reference does not exist,
a data path is missing, a connection type this runtime cannot read); git's own message is quoted with any secret
removed. An SSH key of a connection (``keySecret``) is written to a 0600 file for the clone and removed after it.

These copies are made by the API itself, outside the sandbox, so they never read from a path the ``sandbox`` hides
(``Sandbox.check_source``: followed links included, in case one was swapped in after the API checked the spec),
a ``remotePath`` or binding ``localPath`` may not climb out of its connection or working directory, and symbolic
links inside a copied tree are copied as links (inside the sandbox they cannot reach what it hides).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Final

from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.sandbox import Sandbox
from legion.core.resources import ConnectionSpec, DataBinding, ModelTrainingSpec

GIT_TIMEOUT_S: Final = 300.0
_IGNORED: Final = shutil.ignore_patterns(".git", ".venv", "__pycache__", "build", "*.pyc")


def prepare_source(
    spec: ModelTrainingSpec, vcs: ConnectionSpec | None, into: Path, *, local_root: Path, sandbox: Sandbox | None = None
) -> str | None:
    """Fill the empty directory ``into`` with the training's code; the git commit, or None for a local folder."""
    if into.exists():
        shutil.rmtree(into)
    if vcs is None:
        folder = Path(spec.local_path or ".").expanduser()
        folder = folder if folder.is_absolute() else local_root / folder
        if not folder.is_dir():
            raise PermanentRuntimeError(f"localPath {spec.local_path!r} is not a directory on this machine ({folder})")
        if sandbox is not None:
            sandbox.check_source(folder, "localPath")
        shutil.copytree(folder, into, ignore=_IGNORED, symlinks=True)
        return None
    if vcs.type != "git":
        raise PermanentRuntimeError(f"vcsName must name a git connection; this one has type {vcs.type!r}")
    reference = spec.reference or vcs.reference
    with tempfile.TemporaryDirectory(prefix="legion-git-") as scratch:
        env = _git_environment(vcs, Path(scratch))
        _git(["clone", "--quiet", "--no-checkout", vcs.uri, str(into)], env, vcs)
        if reference:
            _git(["-C", str(into), "checkout", "--quiet", "--detach", reference], env, vcs)
        else:
            _git(["-C", str(into), "checkout", "--quiet"], env, vcs)
        return _git(["-C", str(into), "rev-parse", "HEAD"], env, vcs).strip()


def bind_data(
    bindings: list[DataBinding], connections: dict[str, ConnectionSpec], cwd: Path, sandbox: Sandbox | None = None
) -> None:
    """Copy each binding's data into ``cwd / localPath``."""
    for binding in bindings:
        connection = connections[binding.conn_name]
        if connection.type != "local":
            raise PermanentRuntimeError(
                f"data from {binding.conn_name!r}: the local runtime reads data from 'local' connections only, "
                f"not {connection.type!r}"
            )
        base = Path(connection.uri).expanduser()
        source = base / binding.remote_path if binding.remote_path else base
        target = cwd / binding.local_path
        if not source.exists():
            raise PermanentRuntimeError(f"data from {binding.conn_name!r}: {source} does not exist")
        if not source.resolve().is_relative_to(base.resolve()):
            raise PermanentRuntimeError(f"data from {binding.conn_name!r}: {binding.remote_path!r} leads out of {base}")
        if not target.resolve().is_relative_to(cwd.resolve()):
            raise PermanentRuntimeError(f"data binding localPath {binding.local_path!r} leads out of the working copy")
        if sandbox is not None:
            sandbox.check_source(source, f"data from {binding.conn_name!r}:")
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, dirs_exist_ok=True, symlinks=True)
        else:
            shutil.copy2(source, target if not target.is_dir() else target / source.name)


def _git_environment(vcs: ConnectionSpec, scratch: Path) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("LEGION_", "GIT_"))}
    env.update(GIT_TERMINAL_PROMPT="0", GIT_CONFIG_NOSYSTEM="1")
    if vcs.key_secret:
        key = scratch / "key"
        key.touch(mode=0o600)
        key.write_text(vcs.key_secret.rstrip("\n") + "\n", encoding="utf-8")
        checking = "yes" if vcs.public_key else "accept-new"
        command = f"ssh -i {key} -o IdentitiesOnly=yes -o StrictHostKeyChecking={checking}"
        if vcs.public_key:
            known = scratch / "known_hosts"
            known.write_text(vcs.public_key.rstrip("\n") + "\n", encoding="utf-8")
            command += f" -o UserKnownHostsFile={known}"
        env["GIT_SSH_COMMAND"] = command
    return env


def _git(args: list[str], env: dict[str, str], vcs: ConnectionSpec) -> str:
    try:
        done = subprocess.run(  # git with arguments we built, no shell
            ["git", *args], env=env, capture_output=True, text=True, timeout=GIT_TIMEOUT_S, check=False
        )
    except FileNotFoundError as exc:
        raise PermanentRuntimeError("git is not installed on this machine") from exc
    except subprocess.TimeoutExpired as exc:
        raise PermanentRuntimeError(f"git {args[0]} of {_redact(vcs.uri, vcs)} took over {GIT_TIMEOUT_S:g} s") from exc
    if done.returncode != 0:
        message = _redact(done.stderr.strip() or done.stdout.strip(), vcs)
        verb = args[2] if args[0] == "-C" else args[0]
        raise PermanentRuntimeError(f"git {verb} failed for {_redact(vcs.uri, vcs)}: {message}")
    return done.stdout


def _redact(text: str, vcs: ConnectionSpec) -> str:
    for secret in (vcs.password, vcs.key_secret, vcs.key_id):
        if secret:
            text = text.replace(secret, "*****")
    return text

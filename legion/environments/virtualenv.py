"""``ensure_environment``: a model's own virtualenv, made with uv once and reused, as MLflow's virtualenv env manager.

A model that was trained with other package versions than this Legion's environment runs, in its own virtualenv,
with the versions it was trained with::

    env = ensure_environment(read_needs(model_path), EnvironmentSettings(), report=print)
    env.python          # ~/.cache/legion/envs/<key>/bin/python: runs `-m legion serve MODEL` with the model's pins

What is installed is ``legion.environments.serving``'s (the model's requirements, Legion's serving requirements
under this checkout's constraints, Legion from this checkout), the same as in the model's OCI image. The venv is
kept in ``settings.cache_dir/<key>``, ``key`` a hash of the Python minor version, those requirement and constraint
texts and Legion's source identity, so the second use of the same needs installs nothing. uv (``uv venv``, ``uv pip
install``) runs with this machine's own configuration (its index, its cache: a warm cache makes a build take
seconds), from the cache directory so that no project's configuration applies, and never downloads a Python.
Bytecode is compiled at install time: a sandboxed replica reads the venv but cannot write ``__pycache__``.

A venv is complete once its marker file ``legion-env.json`` is written, last; builds of one key are serialised by
a lock file, and an incomplete venv (an interrupted build) is made again. ``build_sources=False`` installs
published wheels only (``uv pip install --no-build``): the management API builds environments outside the sandbox,
and building a source distribution runs its code.

``running_environment()`` reads the marker of the environment this Python runs in, so a command started in one
(``legion model package`` of a packaging with ``envManager: virtualenv``) can record it.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Final

from legion.core.errors import EnvironmentBuildError, UnavailableError
from legion.environments.needs import ModelNeeds
from legion.environments.serving import LegionSource, constraints_text, requirements_text, stage_source
from legion.environments.settings import EnvironmentSettings

log = logging.getLogger(__name__)

MARKER: Final = "legion-env.json"
"""Written last into a complete environment: what it was made for."""
TAIL_LINES: Final = 30
"""How many of uv's last output lines a failure carries."""
INSTALL_UV: Final = "install it with `python3 -m pip install uv` (scripts/setup.sh does), or set LEGION_ENVS_UV"


@dataclass(frozen=True)
class Environment:
    """A complete model virtualenv in the cache."""

    key: str
    path: Path
    reused: bool = False
    """True when it was there already (nothing was installed this time)."""

    @property
    def python(self) -> Path:
        return self.path / "bin" / "python"


@dataclass(frozen=True)
class RunningEnvironment:
    """The Legion-made environment this Python runs in (from its marker)."""

    key: str
    needs: str
    """``ModelNeeds.digest()`` of the model it was made for."""
    python: Path


@dataclass(frozen=True)
class _Plan:
    """What a venv is made of; ``key`` is a hash of all of it but the source's path."""

    needs: ModelNeeds
    requirements: str
    """``requirements.txt`` given to uv."""
    constraints: str
    """``constraints.txt`` given to uv."""
    source: LegionSource
    legion: str
    """``LegionSource.identity()``."""

    @classmethod
    def of(cls, needs: ModelNeeds, source: LegionSource) -> _Plan:
        return cls(needs, requirements_text(needs), constraints_text(needs, source), source, source.identity())

    def inputs(self) -> dict[str, str]:
        return {"python": self.needs.python, "requirements": self.requirements, "constraints": self.constraints,
                "legion": self.legion}  # fmt: skip

    @property
    def key(self) -> str:
        return hashlib.sha256(json.dumps(self.inputs(), sort_keys=True).encode()).hexdigest()[:16]


def _ignore(_: str) -> None:
    return None


def ensure_environment(
    needs: ModelNeeds,
    settings: EnvironmentSettings,
    *,
    source: LegionSource | None = None,
    build_sources: bool = True,
    report: Callable[[str], None] = _ignore,
) -> Environment:
    """The virtualenv for ``needs``: reused from the cache, else made with uv (``report`` hears which).

    Raises ``UnavailableError`` when uv is missing and ``EnvironmentBuildError`` when it fails (uv's last lines)."""
    plan = _Plan.of(needs, source or LegionSource.of_running())
    key = plan.key
    path = settings.cache_dir.expanduser().absolute() / key
    path.parent.mkdir(parents=True, exist_ok=True)
    with _locked(path.parent / f"{key}.lock"):
        if (path / MARKER).is_file() and (path / "bin" / "python").exists():
            report(f"reusing the model's virtualenv {path}")
            return Environment(key, path, reused=True)
        uv = find_uv(settings)
        shown = ", ".join(needs.requirements) or "no packages"
        report(
            f"building the model's virtualenv {path} with uv: Python {needs.python}, {shown}, and Legion's serving "
            "runtime (the first build of these requirements takes a while; later starts reuse it)"
        )
        shutil.rmtree(path, ignore_errors=True)
        try:
            _build(uv, settings, path, plan, build_sources)
        except BaseException:
            shutil.rmtree(path, ignore_errors=True)
            raise
        marker = {**plan.inputs(), "key": key, "needs": needs.digest(), "modelRequirements": list(needs.requirements),
                  "createdAt": datetime.now(UTC).isoformat()}  # fmt: skip
        written = path / f".{MARKER}.tmp"
        written.write_text(json.dumps(marker, indent=2) + "\n", encoding="utf-8")
        written.replace(path / MARKER)  # whole or not at all: its presence says the venv is complete
    report(f"built the model's virtualenv {path}")
    return Environment(key, path)


def running_environment(prefix: str | None = None) -> RunningEnvironment | None:
    """The Legion-made environment at ``prefix`` (by default the one whose Python this is), or None."""
    prefix = prefix or sys.prefix
    marker = Path(prefix) / MARKER
    try:
        data = json.loads(marker.read_text(encoding="utf-8"))
        return RunningEnvironment(
            key=str(data["key"]), needs=str(data["needs"]), python=Path(prefix) / "bin" / "python"
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None


def find_uv(settings: EnvironmentSettings) -> str:
    """The uv executable: ``settings.uv``, else ``uv`` on PATH, else next to this Python."""
    if settings.uv is not None:
        if settings.uv.is_file() and os.access(settings.uv, os.X_OK):
            return str(settings.uv)
        raise UnavailableError(f"uv is not at {settings.uv} (LEGION_ENVS_UV); {INSTALL_UV}")
    beside = Path(sys.executable).parent / "uv"
    found = shutil.which("uv") or (str(beside) if beside.is_file() and os.access(beside, os.X_OK) else None)
    if found is None:
        raise UnavailableError(
            f"uv is not installed (not on PATH, nor next to {sys.executable}); a model's virtualenv is made with it: "
            + INSTALL_UV
        )
    return found


def _build(uv: str, settings: EnvironmentSettings, path: Path, plan: _Plan, build_sources: bool) -> None:
    python = str(path / "bin" / "python")
    with tempfile.TemporaryDirectory(prefix="legion-env-") as scratch:
        staged = Path(scratch)
        (staged / "requirements.txt").write_text(plan.requirements, encoding="utf-8")
        (staged / "constraints.txt").write_text(plan.constraints, encoding="utf-8")
        stage_source(plan.source, staged / "legion-src")  # a copy: building the wheel writes next to its source
        _uv(settings, [uv, "venv", "--quiet", "--no-python-downloads", "--python", plan.needs.python, str(path)])
        install = [uv, "pip", "install", "--quiet", "--compile-bytecode", "--python", python]
        no_build = [] if build_sources else ["--no-build"]
        _uv(settings, [*install, *no_build, "--requirement", str(staged / "requirements.txt"),
                       "--constraint", str(staged / "constraints.txt")])  # fmt: skip
        _uv(settings, [*install, "--no-deps", str(staged / "legion-src")])


def _uv(settings: EnvironmentSettings, argv: Sequence[str]) -> None:
    shown = " ".join(argv)
    log.debug("running %s", shown)
    cwd = settings.cache_dir.expanduser()  # not the caller's directory: a project's uv configuration must not apply
    try:
        done = subprocess.run(
            list(argv), capture_output=True, text=True, cwd=cwd, timeout=settings.timeout_s, check=False
        )
    except subprocess.TimeoutExpired:
        raise EnvironmentBuildError(f"{shown} did not finish within {settings.timeout_s:g} s") from None
    except OSError as exc:
        raise UnavailableError(f"cannot run {argv[0]}: {exc.strerror or exc}; {INSTALL_UV}") from None
    if done.returncode != 0:
        output = (done.stdout + done.stderr).strip()
        tail = "\n".join(output.splitlines()[-TAIL_LINES:])
        hint = ""
        if "No interpreter found" in output or "No Python" in output:
            hint = "\n(uv uses the Pythons installed on this machine and downloads none: install that Python)"
        raise EnvironmentBuildError(f"{shown} failed (exit {done.returncode}):\n{tail}{hint}")


@contextlib.contextmanager
def _locked(path: Path) -> Iterator[None]:
    """An exclusive lock on ``path`` (created if missing) for the ``with`` block: one build of a key at a time."""
    with path.open("a") as file:
        fcntl.flock(file.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(file.fileno(), fcntl.LOCK_UN)

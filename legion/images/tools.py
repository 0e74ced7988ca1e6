"""The one adapter between Legion and the container tools (podman, skopeo): configuration, calls, errors.

Every call to a container tool goes through ``ContainerTools.run``, which

- runs it with Legion's own ``containers.conf`` (the ulimits and runtime that ``podman run`` needs on these
  machines, cgroupfs because there may be no systemd), ``registries.conf`` (no unqualified search, plain HTTP only
  for the registries named in the settings) and, when the settings give a ``storage_dir``, a private
  ``storage.conf``, so tests never touch the user's images;
- never shows a secret: arguments are logged and reported with the values it was told are secret replaced;
- translates a failure into the ``legion.core`` error tree here and nowhere else: a missing tool or an
  unreachable registry is ``UnavailableError``, refused credentials ``UnauthorizedError``, an unknown image
  ``NotFoundError``, anything else ``ImageBuildError`` with the tool's last lines of output.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from legion.core.errors import ImageBuildError, LegionError, NotFoundError, UnauthorizedError, UnavailableError
from legion.images.settings import ImageSettings

log = logging.getLogger(__name__)

TAIL_LINES = 40
"""How many of a failed tool's last output lines an error carries."""

_UNAUTHORIZED = re.compile(r"unauthorized|authentication required|401 Unauthorized|invalid username/password", re.I)
_NOT_FOUND = re.compile(r"manifest unknown|image not known|no such image|not found: manifest|does not exist", re.I)
_UNREACHABLE = re.compile(r"connection refused|no such host|i/o timeout|network is unreachable", re.I)


@dataclass(frozen=True)
class ToolResult:
    """What a finished tool call printed (stdout and stderr as text)."""

    returncode: int
    stdout: str
    stderr: str


class ContainerTools:
    """Runs podman and skopeo with Legion's configuration; see the module docstring.

    >>> tools = ContainerTools(ImageSettings(storage_dir=tmp_path / "containers"))
    >>> tools.podman("image", "exists", "localhost/legion-base:abc", check=False)
    """

    def __init__(self, settings: ImageSettings) -> None:
        self.settings = settings
        self._config_dir = self._write_config()

    @property
    def config_dir(self) -> Path:
        """Where this adapter's containers.conf, registries.conf and storage.conf are."""
        return self._config_dir

    def environment(self) -> dict[str, str]:
        """The environment every tool call gets: this process's, pointed at Legion's configuration files."""
        env = dict(os.environ)
        env["CONTAINERS_CONF"] = str(self._config_dir / "containers.conf")
        env["CONTAINERS_REGISTRIES_CONF"] = str(self._config_dir / "registries.conf")
        if self.settings.storage_dir is not None:
            env["CONTAINERS_STORAGE_CONF"] = str(self._config_dir / "storage.conf")
        return env

    def podman(
        self, *args: str, check: bool = True, stdin: int | None = None, secrets: Sequence[str] = ()
    ) -> ToolResult:
        """``podman ARGS`` (see ``run``)."""
        return self.run(["podman", *args], check=check, stdin=stdin, secrets=secrets)

    def skopeo(self, *args: str, check: bool = True, secrets: Sequence[str] = ()) -> ToolResult:
        """``skopeo ARGS`` with this adapter's registries.conf (skopeo ignores the environment variable)."""
        return self.run(
            ["skopeo", "--registries-conf", str(self._config_dir / "registries.conf"), *args],
            check=check,
            secrets=secrets,
        )

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        stdin: int | None = None,
        secrets: Sequence[str] = (),
        extra_env: Mapping[str, str] | None = None,
    ) -> ToolResult:
        """Run one tool to completion; with ``check`` a non-zero exit raises the matching ``LegionError``.

        ``stdin`` is a file descriptor to read from (a pipe from ``tar``); ``secrets`` are strings never shown in
        logs or errors.
        """
        shown = _redact(" ".join(argv), secrets)
        if shutil.which(argv[0]) is None:
            raise UnavailableError(f"{argv[0]} is not installed (Debian: apt-get install {argv[0]})")
        log.debug("running %s", shown)
        env = self.environment() | dict(extra_env or {})
        try:
            done = subprocess.run(
                list(argv),
                stdin=stdin,
                capture_output=True,
                text=True,
                env=env,
                timeout=self.settings.timeout_s,
                check=False,
            )
        except subprocess.TimeoutExpired:
            raise UnavailableError(f"{shown} did not finish within {self.settings.timeout_s:g} s") from None
        result = ToolResult(done.returncode, done.stdout, done.stderr)
        if check and done.returncode != 0:
            raise failure(shown, done.returncode, _redact(done.stdout + done.stderr, secrets))
        return result

    def _write_config(self) -> Path:
        settings = self.settings
        if settings.storage_dir is not None:
            directory = settings.storage_dir / "config"
        else:
            directory = settings.cache_dir / "config"
        directory.mkdir(parents=True, exist_ok=True)
        _write(directory / "containers.conf", CONTAINERS_CONF)
        _write(directory / "registries.conf", registries_conf(settings.insecure_registries))
        if settings.storage_dir is not None:
            _write(directory / "storage.conf", storage_conf(settings.storage_dir))
        return directory


CONTAINERS_CONF = """\
# Written by Legion (legion.images.tools). podman run fails to set the default rlimits on these machines
# without explicit ones; runc is the runtime Debian ships; cgroupfs because there may be no systemd.
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


def registries_conf(insecure: Sequence[str]) -> str:
    """No unqualified search (a short name never resolves to some registry); plain HTTP only where told."""
    lines = ["# Written by Legion (legion.images.tools).", "unqualified-search-registries = []", ""]
    for location in insecure:
        lines += ["[[registry]]", f'location = "{location}"', "insecure = true", ""]
    return "\n".join(lines)


def storage_conf(storage_dir: Path) -> str:
    """Images, layers and run state under ``storage_dir`` only."""
    return (
        "# Written by Legion (legion.images.tools).\n"
        "[storage]\n"
        'driver = "overlay"\n'
        f'graphroot = "{storage_dir / "graph"}"\n'
        f'runroot = "{storage_dir / "run"}"\n'
    )


def failure(command: str, returncode: int, output: str) -> LegionError:
    """The ``LegionError`` for a tool that exited with ``returncode`` after printing ``output``."""
    tail = "\n".join(output.strip().splitlines()[-TAIL_LINES:])
    detail = f"{command} failed (exit {returncode}):\n{tail}"
    if _UNAUTHORIZED.search(output):
        return UnauthorizedError(f"the registry refused the credentials: {command}\n{tail}")
    if _UNREACHABLE.search(output):
        return UnavailableError(detail)
    if _NOT_FOUND.search(output):
        return NotFoundError(detail)
    return ImageBuildError(detail)


def _redact(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        if secret:
            text = text.replace(secret, "*****")
    return text


def _write(path: Path, text: str) -> None:
    if not path.is_file() or path.read_text(encoding="utf-8") != text:
        path.write_text(text, encoding="utf-8")

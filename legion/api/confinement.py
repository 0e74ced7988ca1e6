"""What user-given host paths may name, and how user code is sandboxed: the API's side of "user code never reaches
the control plane".

A ``local`` Connection's ``uri``, a ModelTraining's ``localPath``, a ModelDeployment's ``image`` (a model path on
the local runtime) and an imported model's ``path`` are read by the API itself (copied into a job, served, loaded),
outside any sandbox. Each must lie under one of the configured roots (``ApiSettings.allowed_roots``; by default the
API's working directory) or in the platform's own model and package stores, and never elsewhere in its data
directory (keys, database, logs, other jobs' files) nor in its database file. Paths are resolved first (``..``
and symbolic links), so a link inside an allowed root that leads out of it is refused too.

``Confinement.problems(resource)`` gives ``{field: why}`` for the resource's paths; the resource service adds them
to the validation problems before it stores a spec (422, problem+json naming each field). ``sandbox_for(settings)``
makes the runtimes' ``Sandbox``, hiding the data directory, the database and the CLI's tokens.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy.engine import make_url

from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.sandbox import Sandbox
from legion.api.settings import ApiSettings
from legion.core.errors import InvalidInputError
from legion.core.resources import Connection, ModelDeployment, ModelTraining, Resource

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Confinement:
    """Where user-given paths may point; see the module docstring.

    confinement = Confinement.from_settings(settings)
    confinement.problems(resource)        # {"spec.uri": "/srv/legion is not under an allowed root ..."}
    confinement.check_path("path", "/x")  # raises InvalidInputError
    """

    roots: tuple[Path, ...]
    """Directories user paths may name (resolved)."""
    stores: tuple[Path, ...]
    """The platform's model and package stores: allowed although they lie in the data directory."""
    forbidden: tuple[Path, ...]
    """Never allowed (outside the stores), even under a root: the data directory, the database file."""
    base: Path
    """What a relative ``localPath`` or imported ``path`` is relative to (the API's working directory)."""
    model_root: Path | None = None
    """What a relative deployment ``image`` is relative to; None: images are not paths (no local runtime)."""

    @classmethod
    def from_settings(cls, settings: ApiSettings, *, images: bool) -> Confinement:
        """The confinement of an API; ``images``: deployment images are local paths (the local runtime)."""
        data_dir = settings.data_dir.expanduser().resolve()
        return cls(
            roots=tuple(root.expanduser().resolve() for root in settings.allowed_roots),
            stores=(data_dir / "models", data_dir / "packages"),
            forbidden=(data_dir, *_database_files(settings)),
            base=Path.cwd().resolve(),
            model_root=data_dir if images else None,
        )

    def problems(self, resource: Resource) -> dict[str, str]:
        """``{field: why}`` for each path of ``resource`` that lies outside the allowed places."""
        found: dict[str, str | None] = {}
        if isinstance(resource, Connection) and resource.spec.type == "local":
            found["spec.uri"] = self.why(resource.spec.uri.removeprefix("file://"), self.base)
        elif isinstance(resource, ModelTraining) and resource.spec.vcs_name is None:
            found["spec.localPath"] = self.why(resource.spec.local_path or ".", self.base)
        elif isinstance(resource, ModelDeployment) and self.model_root is not None:
            found["spec.image"] = self.why(resource.spec.image, self.model_root)
        return {name: why for name, why in found.items() if why is not None}

    def image_path(self, image: str) -> Path | None:
        """The model path a deployment's ``image`` names on this machine (resolved), when images are paths here
        (the local runtime) and this one may be read; else None."""
        if self.model_root is None or self.why(image, self.model_root) is not None:
            return None
        return _resolve(image, self.model_root)

    def check_path(self, field: str, value: str) -> Path:
        """``value`` resolved, or ``InvalidInputError`` naming ``field`` when it lies outside the allowed places."""
        why = self.why(value, self.base)
        if why is not None:
            raise InvalidInputError.for_fields({field: why})
        return _resolve(value, self.base)

    def model_path(self, image: str) -> Path | None:
        """The local path a deployment ``image`` names, when it names one that exists in an allowed place; else None
        (an OCI reference, a missing path, a place the API may not read). Relative to the model root, or to the
        API's working directory where images are not paths for the runtime (the in-memory one)."""
        root = self.model_root if self.model_root is not None else self.base
        if self.why(image, root) is not None:
            return None
        path = _resolve(image, root)
        try:
            return path if path.exists() else None
        except OSError:  # a name the OS refuses to look up
            return None

    def why(self, value: str, relative_to: Path) -> str | None:
        """Why ``value`` (relative to ``relative_to`` unless absolute) may not be used; None when it may."""
        try:
            path = _resolve(value, relative_to)
        except (OSError, ValueError) as exc:
            return f"{value!r} is not a usable path ({exc})"
        if _under(path, self.stores):
            return None
        if _under(path, self.forbidden):
            return f"{value} is in the platform's own data; name a path under an allowed root"
        if _under(path, self.roots):
            return None
        roots = ", ".join(str(root) for root in self.roots) or "none"
        return f"{value} is not under an allowed root ({roots}; set LEGION_API_ALLOWED_ROOTS to allow others)"


def sandbox_for(settings: ApiSettings) -> Sandbox:
    """The sandbox of the local runtimes: bubblewrap hiding the data directory, the database file and the CLI's
    configuration (its tokens); off when ``settings.sandbox`` is false, or under ``--dev`` without bubblewrap."""
    hidden = tuple(p.expanduser() for p in (settings.data_dir, *_database_files(settings), Path.home() / ".legion"))
    if not settings.sandbox:
        log.warning("LEGION_API_SANDBOX=false: user code runs unconfined, as this user, with the API's files")
        return Sandbox.off(hidden)
    data_dir = settings.data_dir.expanduser()
    sandbox = Sandbox(hidden=hidden, shared=(data_dir / "models", data_dir / "packages"))
    try:
        sandbox.check()
    except PermanentRuntimeError as exc:
        if settings.dev:
            log.warning("--dev: %s; user code runs unconfined", exc.reason)
            return Sandbox.off(hidden)
        # logged without a traceback: the reason is the whole story
        log.error("%s; trainings, packagings, deployments and model imports are refused until then", exc.reason)
    return sandbox


def _database_files(settings: ApiSettings) -> list[Path]:
    """The SQLite database file and its journal files, when the database is a file."""
    url = make_url(settings.resolved_database_url())
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return []
    database = Path(url.database).expanduser().resolve()
    return [database, database.with_name(database.name + "-wal"), database.with_name(database.name + "-shm")]


def _resolve(value: str, relative_to: Path) -> Path:
    path = Path(value).expanduser()
    return (path if path.is_absolute() else relative_to / path).resolve()


def _under(path: Path, roots: Iterable[Path]) -> bool:
    return any(path.is_relative_to(root) for root in roots)

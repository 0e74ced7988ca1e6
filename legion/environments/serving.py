"""What a model's environment installs besides the model's needs: Legion's serving runtime, from this checkout.

Written once for the two places that make such an environment, the model's OCI image (``legion.images``) and the
model's virtualenv (``legion.environments.virtualenv``); both install, in this order:

1. ``requirements_text(needs)``: the model's requirements, then Legion's own requirements without what only the
   management API needs (``NOT_FOR_SERVING``), all constrained by ``constraints_text(needs, source)``, this
   checkout's ``constraints.txt`` without the packages the model names (the model's versions win);
2. Legion itself from its source (``LegionSource``: ``stage_source`` copies what a wheel is built from, without
   caches, so the checkout is never written), with no dependencies.

``LegionSource.identity()`` names that source (version and a digest of the files ``stage_source`` copies), so a
cached environment is rebuilt when Legion's code changes.
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.metadata
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

import legion
from legion.core.errors import UnavailableError
from legion.environments.needs import ModelNeeds, normal_name, requirement_name

NOT_FOR_SERVING: Final = frozenset({"alembic", "sqlalchemy", "psycopg", "fastapi", "scikit-learn"})
"""Legion requirements that only the management API (or a model) needs: the model server never imports them, so
a model's environment leaves them out unless the model names them itself (a scikit-learn model does)."""
SOURCE_FILES: Final = ("pyproject.toml", "README.md")
"""Files of the checkout's root that building Legion's wheel reads (besides ``legion/``)."""
_SKIPPED: Final = ("__pycache__", ".mypy_cache", ".ruff_cache", "*.pyc", "*.egg-info")
_PIN: Final = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==")


@dataclass(frozen=True)
class LegionSource:
    """Legion's source checkout that an environment installs: ``root`` holds pyproject.toml and ``legion/``."""

    root: Path

    @classmethod
    def of_running(cls) -> LegionSource:
        """The checkout this Legion runs from (an editable install or the source tree)."""
        root = Path(legion.__file__).resolve().parents[1]
        if not (root / "pyproject.toml").is_file():
            raise UnavailableError(f"a model's environment installs Legion from its source checkout; {root} is not one")
        return cls(root)

    def files(self) -> Iterator[Path]:
        """Every file ``stage_source`` copies, relative to ``root``, in a stable order."""
        yield from (Path(name) for name in SOURCE_FILES)
        for path in sorted((self.root / "legion").rglob("*")):
            relative = path.relative_to(self.root)
            if path.is_file() and not any(
                fnmatch.fnmatch(part, pattern) for part in relative.parts for pattern in _SKIPPED
            ):
                yield relative

    def identity(self) -> str:
        """``<version>+<digest of the source files>``: what a cached environment's Legion was built from."""
        digest = hashlib.sha256()
        for relative in self.files():
            digest.update(str(relative).encode() + b"\0" + (self.root / relative).read_bytes() + b"\0")
        return f"{legion.__version__}+{digest.hexdigest()[:12]}"


def stage_source(source: LegionSource, into: Path) -> None:
    """Copy what Legion's wheel is built from into the empty or missing directory ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for name in SOURCE_FILES:
        shutil.copyfile(source.root / name, into / name)
    shutil.copytree(source.root / "legion", into / "legion", ignore=shutil.ignore_patterns(*_SKIPPED))


def requirements_text(needs: ModelNeeds) -> str:
    """``requirements.txt`` of a model's environment: the model's requirements and Legion's serving requirements."""
    legion_needs = [req for req in importlib.metadata.requires("legion") or []
                    if "extra ==" not in req and normal_name(requirement_name(req)) not in NOT_FOR_SERVING]  # fmt: skip
    return "\n".join([*needs.requirements, *legion_needs]) + "\n"


def constraints_text(needs: ModelNeeds, source: LegionSource) -> str:
    """This checkout's ``constraints.txt`` without the packages the model names (the model's versions win)."""
    path = source.root / "constraints.txt"
    if not path.is_file():
        return ""
    named = needs.names
    kept = []
    for line in path.read_text(encoding="utf-8").splitlines():
        found = _PIN.match(line.strip())
        if found and normal_name(found.group(1)) not in named:
            kept.append(line.strip())
    return "\n".join(kept) + "\n"

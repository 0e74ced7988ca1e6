"""``EnvironmentSettings``: where models' virtualenvs are kept and which uv makes them (``LEGION_ENVS_*``).

A group of the settings of the commands that make or use such environments (``ServerSettings.environments`` of
``legion serve``, ``ApiSettings.environments`` of the management API), so ``LEGION_ENVS_CACHE_DIR`` moves the
cache for all of them.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from legion.core.settings import LegionSettings


def _default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "legion" / "envs"


class EnvironmentSettings(LegionSettings):
    """Settings of the virtualenv builder (``LEGION_ENVS_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="LEGION_ENVS_", extra="ignore", frozen=True)

    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Where each model's virtualenv is kept, one directory per hash of (Python, requirements, Legion's source);
    ``~/.cache/legion/envs`` by default."""
    uv: Path | None = None
    """The uv executable; None: ``uv`` on PATH, else next to this Python (``scripts/setup.sh`` installs it)."""
    timeout_s: float = Field(default=1800.0, gt=0)
    """Longest one uv call (creating the venv, installing) may take."""

"""The settings base: every service has one settings object, built once in its entry point and passed down.

Only settings objects read ``os.environ`` (prefix ``LEGION_``); nothing reads the environment at import time.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class LegionSettings(BaseSettings):
    """Base of every ``*Settings``: ``LEGION_`` prefix, ``__`` for nested groups, unknown variables ignored."""

    model_config = SettingsConfigDict(
        env_prefix="LEGION_",
        env_nested_delimiter="__",
        extra="ignore",
        frozen=True,
    )


class HomeSettings(LegionSettings):
    """Where this installation keeps its data unless a command is told otherwise."""

    data_dir: Path = Field(default_factory=lambda: Path.home() / ".legion")
    """The data directory of every command (``LEGION_DATA_DIR``): ``legion api``'s database and keys, the gateway's
    logs, ``legion up``'s platform. A service's own variable (``LEGION_API_DATA_DIR``) and ``--data-dir`` win."""


def legion_home() -> Path:
    """The default data directory: ``$LEGION_DATA_DIR``, else ``~/.legion``; a function, so the environment and the
    home directory are read when settings are built (``Field(default_factory=...)``), never at import time."""
    return HomeSettings().data_dir


def nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Dotted names to nested groups, for a settings object with groups:
    ``{"auth.enabled": False, "port": 1}`` → ``{"auth": {"enabled": False}, "port": 1}``."""
    nested: dict[str, Any] = {}
    for name, value in values.items():
        *groups, field = name.split(".")
        target = nested
        for group in groups:
            target = target.setdefault(group, {})
        target[field] = value
    return nested


def as_environment(settings: BaseSettings) -> dict[str, str]:
    """Variables (``<prefix><FIELD>``) from which ``type(settings)()`` rebuilds ``settings``: for a command that
    re-executes itself elsewhere (``legion serve --env-manager virtualenv`` in the model's virtualenv). Groups and
    mappings go as JSON; a field that is None is left out (it keeps its default there). Secrets are masked by
    ``model_dump``, so settings that hold any must not travel this way.

        os.execve(python, [python, "-m", "legion", "serve", path], {**os.environ, **as_environment(settings)})
    """
    prefix = str(settings.model_config.get("env_prefix") or "")
    values = settings.model_dump(mode="json")
    return {
        f"{prefix}{name}".upper(): value if isinstance(value, str) else json.dumps(value)
        for name, value in values.items()
        if value is not None
    }

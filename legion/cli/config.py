"""Where the CLI finds the management API: contexts in ``~/.legion/config.yaml``, overridden by variables.

A context is a URL, a token and, optionally, the gateway that model calls go through (and, for one that
``legion up`` saved, the data directory of that platform). ``legion login`` writes one and makes it current (the
file is created with mode 0600, since it holds tokens); ``legion up`` writes one per data directory and makes it
current only when asked or when nothing else is; ``LEGION_API_URL``, ``LEGION_API_TOKEN`` and ``LEGION_GATEWAY_URL``
override the current context for one command, ``LEGION_CONTEXT`` picks another, ``LEGION_CONFIG_FILE`` another
file. ``legion.cli.config_cmd`` shows and edits the file.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field

from legion.core.errors import InvalidInputError
from legion.core.settings import LegionSettings

DEFAULT_URL = "http://127.0.0.1:5080"
LOCAL = "local"
"""The context ``legion up`` saves for the platform in the default data directory."""


class ClientSettings(LegionSettings):
    """What the environment tells the CLI."""

    config_file: Path = Field(default_factory=lambda: Path.home() / ".legion" / "config.yaml")
    """The CLI's contexts file."""
    api_url: str | None = None
    """Management API URL, overriding the current context."""
    api_token: str | None = None
    """Bearer token, overriding the current context."""
    context: str | None = None
    """Context to use instead of the file's current one."""
    gateway_url: str | None = None
    """The gateway that model calls go through, overriding the current context's."""


@dataclass(frozen=True, slots=True)
class Target:
    url: str
    token: str | None
    context: str | None
    gateway: str | None = None


@dataclass(frozen=True, slots=True)
class Context:
    """One saved context, as the file holds it (``dataDir`` only in those ``legion up`` saved)."""

    url: str
    token: str | None = None
    gateway: str | None = None
    data_dir: Path | None = None
    """The data directory of the platform ``legion up`` ran, so another one's context is never taken for it."""

    def as_yaml(self) -> dict[str, str]:
        return {
            "url": self.url,
            **({"token": self.token} if self.token else {}),
            **({"gateway": self.gateway} if self.gateway else {}),
            **({"dataDir": str(self.data_dir)} if self.data_dir else {}),
        }


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"current": None, "contexts": {}}
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        return {"current": None, "contexts": {}}
    if not isinstance(data.get("contexts"), dict):
        data["contexts"] = {}
    return data


def write_config(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        yaml.safe_dump(data, out, sort_keys=False)


def resolve(settings: ClientSettings) -> Target:
    """The URL and token to use: variables first, then the chosen or current context, then the default URL."""
    data = read_config(settings.config_file)
    name = settings.context or data.get("current")
    context: dict[str, Any] = {}
    if name:
        context = data["contexts"].get(name) or {}
        if not context and settings.context:
            raise InvalidInputError(f"no context {name!r} in {settings.config_file}; known: {known(data)}")
    url = settings.api_url or context.get("url") or DEFAULT_URL
    token = settings.api_token or context.get("token")
    gateway = settings.gateway_url or context.get("gateway")
    return Target(str(url), str(token) if token else None, name, str(gateway) if gateway else None)


def known(data: dict[str, Any]) -> str:
    """The context names of a read file, for an error message."""
    return ", ".join(sorted(data["contexts"])) or "none"


def save_context(path: Path, name: str, context: Context, *, make_current: bool = True) -> bool:
    """Save ``context`` as ``name``; it becomes current when ``make_current``, or when no context is current yet.
    Whether it is current now."""
    data = read_config(path)
    data["contexts"][name] = context.as_yaml()
    current = data.get("current")
    if make_current or not current or current not in data["contexts"]:
        data["current"] = current = name
    write_config(path, data)
    return bool(current == name)


def platform_context_name(path: Path, data_dir: Path) -> str:
    """The context ``legion up`` saves for the platform in ``data_dir``: ``local`` for ``~/.legion``, else
    ``local-<directory name>``, with a number added while that name is another data directory's context."""
    data_dir = data_dir.resolve()
    if data_dir == (Path.home() / ".legion").resolve():
        base = LOCAL
    else:
        base = f"{LOCAL}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', data_dir.name).strip('-') or 'platform'}"
    contexts = read_config(path)["contexts"]
    name, number = base, 1
    while isinstance(contexts.get(name), dict) and contexts[name].get("dataDir") not in (None, str(data_dir)):
        number += 1
        name = f"{base}-{number}"
    return name

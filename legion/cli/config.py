"""Where the CLI finds the management API: contexts in ``~/.legion/config.yaml``, overridden by variables.

A context is a URL, a token and, optionally, the gateway that model calls go through. ``legion login`` writes one
(the file is created with mode 0600, since it holds tokens); ``LEGION_API_URL``, ``LEGION_API_TOKEN`` and
``LEGION_GATEWAY_URL`` override the current context for one command.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from legion.core.errors import InvalidInputError
from legion.core.settings import LegionSettings

DEFAULT_URL = "http://127.0.0.1:5080"


class ClientSettings(LegionSettings):
    """What the environment tells the CLI."""

    config_file: Path = Path.home() / ".legion" / "config.yaml"
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


def read_config(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"current": None, "contexts": {}}
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"{path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        return {"current": None, "contexts": {}}
    data.setdefault("contexts", {})
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
            known = ", ".join(sorted(data["contexts"])) or "none"
            raise InvalidInputError(f"no context {name!r} in {settings.config_file}; known: {known}")
    url = settings.api_url or context.get("url") or DEFAULT_URL
    token = settings.api_token or context.get("token")
    gateway = settings.gateway_url or context.get("gateway")
    return Target(str(url), str(token) if token else None, name, str(gateway) if gateway else None)


def save_context(path: Path, name: str, url: str, token: str | None, gateway: str | None = None) -> None:
    data = read_config(path)
    data["contexts"][name] = {
        "url": url,
        **({"token": token} if token else {}),
        **({"gateway": gateway} if gateway else {}),
    }
    data["current"] = name
    write_config(path, data)

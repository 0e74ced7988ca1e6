"""Delivering a ModelDeployment's properties to its replicas: at start, and over loopback while they run.

A deployment's properties (``spec.properties``, set through the management API) belong to the platform, not to a
replica's memory, so the local runtime gives them to every replica it starts (``start_environment``: the values in
``LEGION_PROPERTIES``, and a token of the replica's own in ``LEGION_PROPERTIES_TOKEN`` without which its
``PUT /api/model/properties`` refuses a change) and ``push``es a change to each running replica that does not hold
it yet. A push sends every property the model defines (``full_values``: the model's saved values, then the
deployment's), so a property no longer set goes back to the model's value.

``push`` answers what happened as a value: ``DELIVERED``; ``Refused(reason)`` when the replica says the values do
not fit its model (a 4xx, which retrying will not change); ``UNREACHABLE`` otherwise (retried on the next look).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

import httpx

from legion.core.errors import LegionError
from legion.model.manifest import saved_manifest

PROPERTIES_PATH: Final = "/api/model/properties"


@dataclass(frozen=True, slots=True)
class Refused:
    """The replica refused the values (a 4xx): ``reason`` is what it said."""

    reason: str


DELIVERED: Final = "delivered"
UNREACHABLE: Final = "unreachable"
Delivery = Refused | Literal["delivered", "unreachable"]
"""What ``push`` did: ``DELIVERED``, ``UNREACHABLE`` or ``Refused``."""


def new_token() -> str:
    """A replica's own properties token (kept in the runtime's state, which user code cannot read)."""
    return secrets.token_urlsafe(32)


def start_environment(values: Mapping[str, Any], token: str) -> dict[str, str]:
    """The variables a replica starts with: its properties token and the deployment's property values."""
    env = {"LEGION_PROPERTIES_TOKEN": token}
    if values:
        env["LEGION_PROPERTIES"] = json.dumps(dict(values))
    return env


def _saved_values(model_path: str) -> dict[str, Any]:
    # read at each push (pushes are rare), so a model rebuilt at the same path is read as it is now
    try:
        return dict(saved_manifest(Path(model_path)).properties)
    except LegionError:  # an MLflow model, or no readable manifest: it defines no properties
        return {}


def full_values(model_path: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """Every property of the model at ``model_path``: its saved value unless ``values`` sets it."""
    return {**_saved_values(model_path), **values}


async def push(client: httpx.AsyncClient, url: str, token: str | None, values: Mapping[str, Any]) -> Delivery:
    """``PUT`` ``values`` to the replica at ``url`` (with its ``token``, when it was started with one)."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        answer = await client.put(f"{url}{PROPERTIES_PATH}", json=dict(values), headers=headers)
    except httpx.HTTPError:
        return UNREACHABLE
    if answer.is_success:
        return DELIVERED
    if 400 <= answer.status_code < 500:
        try:
            reason = str(answer.json().get("error") or answer.text)
        except (ValueError, AttributeError):
            reason = answer.text
        return Refused(reason[:2000])
    return UNREACHABLE

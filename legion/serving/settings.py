"""``ServerSettings``: everything the model server can be told, from flags or ``LEGION_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr

from legion.core.logs import LogFormat
from legion.core.settings import LegionSettings
from legion.environments.settings import EnvironmentSettings


class ServerSettings(LegionSettings):
    """Settings of one ``legion serve`` process group."""

    model_path: Path
    """Model directory, ``.zip`` or MLflow model directory to serve."""
    host: str = "127.0.0.1"
    """Address to bind; loopback by default, ``0.0.0.0`` to expose it."""
    port: int = Field(default=5000, ge=0, le=65535)
    """TCP port; 0 picks a free one (printed on start)."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes sharing the port through SO_REUSEPORT; each loads the model."""
    max_batch_size: int = Field(default=64, ge=1)
    """Most requests merged into one model call (adaptive batching); 1 turns batching off."""
    max_batch_wait_s: float = Field(default=0.01, ge=0.0, le=1.0)
    """Longest a batch keeps gathering requests that are still arriving. A batch goes to the model as soon as
    a turn of the event loop brings no new request, so a lone request is never held back by this; 0 turns
    gathering off (requests then merge only while the model is busy)."""
    batch_linger_s: float = Field(default=0.005, ge=0.0, le=0.1)
    """Under concurrency (the previous batch merged several requests), how long a smaller batch waits for the
    next request before it goes to the model; each arrival waits again, up to ``max_batch_wait_s``. Keeps
    batches full behind a proxy that relays requests one after the other (``LEGION_BATCH_LINGER_S``); 0 turns
    it off. Long enough to ride out a proxy that loses its core for a time slice (``serving.batching``)."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest request body accepted; a larger one gets 413."""
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest request head (request line and headers) accepted, in bytes; a larger one gets 431 before it is read
    further (Envoy's limit is of this size)."""
    graceful_timeout_s: float = Field(default=30.0, ge=0.0)
    """On SIGTERM, how long in-flight requests may take to finish before the process exits."""
    check_versions: bool = True
    """Check the model's Python and pinned package versions (False: no checks, no smoke prediction)."""
    strict_requirements: bool = False
    """Refuse a model whose Python or pinned package versions differ from this environment's. Otherwise a
    difference is a warning, and the model is refused only when it fails to load or to predict on its input
    example (``legion.model.loader``)."""
    env_manager: Literal["local", "virtualenv"] = "local"
    """Where the model runs, as ``mlflow models serve --env-manager`` says: ``local``, this environment (versions
    that differ warn); ``virtualenv``, the model's own virtualenv with its pinned requirements and Legion's serving
    runtime, made with uv once and reused (``legion.environments``), in which ``legion serve`` starts again."""
    environments: EnvironmentSettings = Field(default_factory=EnvironmentSettings)
    """Where models' virtualenvs are kept and which uv makes them (``LEGION_ENVS_CACHE_DIR``, ``LEGION_ENVS_UV``)."""
    properties: dict[str, Any] = Field(default_factory=dict)
    """Initial values of model properties, overriding the ones saved with the model (``--property NAME=VALUE``,
    or ``LEGION_PROPERTIES`` as a JSON object: how the platform's local runtime starts a replica)."""
    properties_token: SecretStr | None = None
    """When set, ``PUT /api/model/properties`` needs it as a bearer token (``LEGION_PROPERTIES_TOKEN``). The
    platform's local runtime gives each replica one, so a deployed model's properties change only through the
    management API; unset (a ``legion serve`` of one's own), whoever reaches the server may tune them."""
    log_level: str = "info"
    """Level of the server's log lines."""
    log_format: LogFormat = "text"
    """``text`` for people, ``json`` (one object a line) for log collectors."""

"""``GatewaySettings``: everything ``legion gateway`` can be told, from flags or ``LEGION_GATEWAY_*`` variables.

Groups, in the order a request meets them: where the routing comes from (``routing``: the management API, or a
file), how tokens are checked (``tokens``: the API's HS256 secret, or an identity provider's JWKS), how upstream
replicas are called (``upstream``), and what is logged (``records``: the prediction log and its sink, with ``s3`` and
``fluentd`` groups of their own). Listening, body size and log lines stay at the top.

A field of a group is set by its nested variable (``LEGION_GATEWAY_UPSTREAM__COLD_START_TIMEOUT_S``) or by the flat
name the gateway has always documented (``LEGION_GATEWAY_COLD_START_TIMEOUT_S``, ``LEGION_GATEWAY_LOG_S3_BUCKET``,
``LEGION_GATEWAY_TOKEN_SECRET``; ``FLAT_NAMES`` lists them); the nested variable wins when both are set. The same
flat names are accepted as keywords (``GatewaySettings(token_secret=...)``), which is how the CLI's options arrive.
Built once by the entry point and passed down; nothing else reads the environment.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from legion.core.errors import InvalidInputError
from legion.core.logs import LogFormat
from legion.core.settings import LegionSettings, legion_home, nest

ENV_PREFIX = "LEGION_GATEWAY_"


class _Group(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class RoutingSettings(_Group):
    """Where the routing comes from: the management API's long-poll, or a file."""

    api_url: str | None = None
    """Management API whose ``/api/v1/routing`` is long-polled (e.g. ``http://127.0.0.1:5080``)."""
    api_token: SecretStr | None = None
    """API token (any role) for the routing long-poll and scale-from-zero demands. When absent and the HS256
    secret is known, the gateway signs a short-lived viewer token for itself."""
    api_audience: str = "legion-api"
    """``aud`` of the API tokens the gateway signs for itself."""
    routing_file: Path | None = None
    """Instead of an API: a JSON file in the routing snapshot's format, re-read whenever it changes."""
    poll_wait_s: float = Field(default=30.0, gt=0, le=60)
    """How long one routing long-poll is held by the API when nothing changes."""


class TokenSettings(_Group):
    """How the tokens on model paths are checked."""

    enabled: bool = True
    """Check tokens on model paths; ``False`` opens every model to anyone who can reach the gateway."""
    keys_file: Path | None = None
    """The management API's ``keys.json`` (``<api data dir>/keys.json``): its ``tokenSecret`` signs tokens."""
    token_secret: SecretStr | None = None
    """The HS256 secret itself (instead of ``keys_file``)."""
    jwks_url: str | None = None
    """JWKS document of an external identity provider; tokens are then RS256, checked with its keys."""
    jwks_refresh_s: float = Field(default=300.0, gt=0)
    """How often the JWKS document is re-read (and at most every 10 s when a token names an unknown key)."""
    issuer: str | None = "legion"
    """Required ``iss``; ``None`` (empty variable) does not check it. Set it to the identity provider's issuer."""
    audience: str | None = "legion-model-api"
    """Required ``aud`` of model tokens; ``None`` does not check it."""
    leeway_s: float = Field(default=0.0, ge=0)
    """Clock skew allowed on ``exp`` and ``nbf``."""

    def hs256_secret(self) -> str | None:
        """The shared secret from ``token_secret`` or the API's ``keys_file``; ``None`` when neither is given."""
        if self.token_secret is not None:
            return self.token_secret.get_secret_value()
        if self.keys_file is None:
            return None
        try:
            stored = json.loads(self.keys_file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInputError(f"cannot read the keys file {self.keys_file}: {exc}") from None
        secret = stored.get("tokenSecret") if isinstance(stored, dict) else None
        if not isinstance(secret, str) or not secret:
            raise InvalidInputError(f"the keys file {self.keys_file} has no tokenSecret")
        return secret


class UpstreamSettings(_Group):
    """How replicas are called."""

    connect_timeout_s: float = Field(default=2.0, gt=0)
    """Longest wait for a replica to accept a connection."""
    timeout_s: float = Field(default=60.0, gt=0)
    """Longest wait for a replica's answer once the request is sent (then 504)."""
    max_idle_connections: int = Field(default=64, ge=0)
    """Keep-alive connections kept open per replica."""
    idle_timeout_s: float = Field(default=2.0, gt=0)
    """A kept connection older than this is closed rather than reused (below the model server's 5 s)."""
    eject_s: float = Field(default=2.0, gt=0)
    """How long a replica that refused a connection is passed over before it is tried again."""
    cold_start_timeout_s: float = Field(default=120.0, gt=0)
    """How long a request waits for a deployment with no ready replica (scale from zero) before a 503."""
    demand_interval_s: float = Field(default=5.0, gt=0)
    """How often, per deployment, traffic to a ``minReplicas: 0`` deployment renews its demand."""
    mirror_max_in_flight: int = Field(default=256, ge=1)
    """Mirrored copies in flight at once per mirror deployment; more are dropped (and counted), so mirroring
    never holds back callers."""


class S3SinkSettings(_Group):
    """The S3 sink of the prediction log."""

    bucket: str | None = None
    """Bucket of the S3 sink."""
    prefix: str = ""
    """Key prefix in that bucket."""
    endpoint_url: str | None = None
    """S3 endpoint other than AWS's (MinIO, moto)."""
    region: str | None = None
    """Region of the bucket."""
    key_id: SecretStr | None = None
    """Access key id (else boto3's usual credential chain)."""
    key_secret: SecretStr | None = None
    """Secret access key."""


class FluentdSinkSettings(_Group):
    """The Fluentd sink of the prediction log."""

    host: str = "127.0.0.1"
    """Fluentd (or Fluent Bit) forward-protocol input."""
    port: int = Field(default=24224, ge=1, le=65535)
    """Its port."""
    tag: str = "legion"
    """Tag prefix: records are tagged ``<prefix>.<record tag>``."""


class RecordSettings(_Group):
    """Prediction logging (DESIGN §5): what is recorded, where it waits, where it goes."""

    enabled: bool = True
    """Log every prediction (``request_response`` and ``response_body`` records) and feedback; a deployment opts
    out with ``spec.predictionLogging: false``."""
    buffer_dir: Path = Field(default_factory=lambda: legion_home() / "gateway" / "buffer")
    """The on-disk buffer records wait in until the sink has them (one sub-directory per worker)."""
    buffer_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024)
    """Bytes the buffer may hold undelivered; past it new records are dropped (and counted), never waited for."""
    sink: Literal["local", "s3", "fluentd", "none"] = "local"
    """Where records go: a local directory in Legion's ``model_log/...`` layout, S3, Fluentd, or only the API."""
    dir: Path = Field(default_factory=lambda: legion_home() / "logs")
    """Root of the local sink (records land in ``<dir>/model_log/<tag>/<model>/<version>/...``)."""
    s3: S3SinkSettings = S3SinkSettings()
    """The S3 sink (``sink = "s3"``)."""
    fluentd: FluentdSinkSettings = FluentdSinkSettings()
    """The Fluentd sink (``sink = "fluentd"``)."""
    feedback_store: bool = True
    """Also deliver records to the management API's feedback store (when the routing comes from the API)."""


FLAT_NAMES: Mapping[str, tuple[str, ...]] = {
    **{name: ("routing", name) for name in RoutingSettings.model_fields},
    "auth": ("tokens", "enabled"),
    **{name: ("tokens", name) for name in TokenSettings.model_fields if name != "enabled"},
    "upstream_timeout_s": ("upstream", "timeout_s"),
    **{name: ("upstream", name) for name in UpstreamSettings.model_fields if name != "timeout_s"},
    "prediction_log": ("records", "enabled"),
    "log_buffer_dir": ("records", "buffer_dir"),
    "log_buffer_max_bytes": ("records", "buffer_max_bytes"),
    "log_sink": ("records", "sink"),
    "log_dir": ("records", "dir"),
    "feedback_store": ("records", "feedback_store"),
    **{f"log_s3_{name}": ("records", "s3", name) for name in S3SinkSettings.model_fields},
    **{f"log_fluentd_{name}": ("records", "fluentd", name) for name in FluentdSinkSettings.model_fields},
}
"""The gateway's documented flat names (``--log-dir``, ``LEGION_GATEWAY_LOG_S3_BUCKET``) → their place in a group."""


class GatewaySettings(LegionSettings):
    """Settings of one ``legion gateway`` process group (Legion's EDGE)."""

    model_config = SettingsConfigDict(env_prefix=ENV_PREFIX, env_nested_delimiter="__", extra="ignore", frozen=True)

    # --- where it listens
    host: str = "127.0.0.1"
    """Address to bind; loopback by default, ``0.0.0.0`` to expose it."""
    port: int = Field(default=5090, ge=0, le=65535)
    """TCP port; 0 picks a free one (printed on start)."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes sharing the port through SO_REUSEPORT; each keeps its own routing table and pools."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest request body accepted; a larger one gets 413."""
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest request head (request line and headers) accepted, in bytes; a larger one gets 431 before it is read
    further (Envoy's limit is of this size)."""
    graceful_timeout_s: float = Field(default=30.0, ge=0.0)
    """On SIGTERM, how long in-flight requests may take to finish."""

    routing: RoutingSettings = RoutingSettings()
    """Where the routing comes from."""
    tokens: TokenSettings = TokenSettings()
    """How tokens are checked."""
    upstream: UpstreamSettings = UpstreamSettings()
    """How replicas are called."""
    records: RecordSettings = Field(default_factory=RecordSettings)
    """Prediction logging."""

    # --- logs
    access_log: bool = True
    """One JSON line per request on standard error (no token, no query string, no body)."""
    log_level: str = "info"
    """Level of the gateway's own log lines."""
    log_format: LogFormat = "text"
    """``text`` for people, ``json`` (one object a line) for log collectors."""

    @model_validator(mode="before")
    @classmethod
    def _flat_keywords(cls, values: Any) -> Any:
        """Flat keywords (``token_secret=...``, the CLI's options) go to their group, over what the group has."""
        if not isinstance(values, dict):
            return values
        flat = {name: values[name] for name in FLAT_NAMES if name in values}
        rest = {name: value for name, value in values.items() if name not in flat}
        return _merge(rest, _nest(flat))

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return init_settings, env_settings, _FlatEnvSource(settings_cls), dotenv_settings, file_secret_settings

    def hs256_secret(self) -> str | None:
        """The shared secret from ``tokens.token_secret`` or the API's ``tokens.keys_file``; ``None`` without."""
        return self.tokens.hs256_secret()


class _FlatEnvSource(PydanticBaseSettingsSource):
    """The documented flat variables (``LEGION_GATEWAY_LOG_S3_BUCKET``), placed in their groups."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # everything is read at once in __call__

    def __call__(self) -> dict[str, Any]:
        environ = {name.upper(): value for name, value in os.environ.items()}
        given = {
            name: environ[f"{ENV_PREFIX}{name.upper()}"]
            for name in FLAT_NAMES
            if f"{ENV_PREFIX}{name.upper()}" in environ
        }
        return _nest(given)


def _nest(flat: Mapping[str, Any]) -> dict[str, Any]:
    """Flat names (``FLAT_NAMES``) to the nested groups they stand for."""
    return nest({".".join(FLAT_NAMES[name]): value for name, value in flat.items()})


def _merge(base: dict[str, Any], over: Mapping[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` laid on it, group by group."""
    merged = dict(base)
    for key, value in over.items():
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = _merge(dict(merged[key]), value)
        else:
            merged[key] = value
    return merged

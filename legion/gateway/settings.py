"""``GatewaySettings``: everything ``legion gateway`` can be told, from flags or ``LEGION_GATEWAY_*`` variables.

Groups, in the order a request meets them: where the routing comes from (the management API, or a file), how
tokens are checked (the API's HS256 secret, or an identity provider's JWKS), how upstream replicas are called,
and what is logged. Built once by the entry point and passed down; nothing else reads the environment.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from legion.core.errors import InvalidInputError
from legion.core.logs import LogFormat
from legion.core.settings import LegionSettings


class GatewaySettings(LegionSettings):
    """Settings of one ``legion gateway`` process group (Legion's EDGE)."""

    model_config = SettingsConfigDict(
        env_prefix="LEGION_GATEWAY_", env_nested_delimiter="__", extra="ignore", frozen=True
    )

    # --- where it listens
    host: str = "127.0.0.1"
    """Address to bind; loopback by default, ``0.0.0.0`` to expose it."""
    port: int = Field(default=5090, ge=0, le=65535)
    """TCP port; 0 picks a free one (printed on start)."""
    workers: int = Field(default=1, ge=1, le=64)
    """Worker processes sharing the port through SO_REUSEPORT; each keeps its own routing table and pools."""

    # --- where the routing comes from
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

    # --- how tokens are checked
    auth: bool = True
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

    # --- upstream replicas
    connect_timeout_s: float = Field(default=2.0, gt=0)
    """Longest wait for a replica to accept a connection."""
    upstream_timeout_s: float = Field(default=60.0, gt=0)
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
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Largest request body accepted; a larger one gets 413."""
    graceful_timeout_s: float = Field(default=30.0, ge=0.0)
    """On SIGTERM, how long in-flight requests may take to finish."""

    # --- prediction logging (DESIGN §5)
    prediction_log: bool = True
    """Log every prediction (``request_response`` and ``response_body`` records) and feedback; a deployment opts
    out with ``spec.predictionLogging: false``."""
    log_buffer_dir: Path = Path.home() / ".legion" / "gateway" / "buffer"
    """The on-disk buffer records wait in until the sink has them (one sub-directory per worker)."""
    log_buffer_max_bytes: int = Field(default=512 * 1024 * 1024, ge=1024 * 1024)
    """Bytes the buffer may hold undelivered; past it new records are dropped (and counted), never waited for."""
    log_sink: Literal["local", "s3", "fluentd", "none"] = "local"
    """Where records go: a local directory in Legion's ``model_log/...`` layout, S3, Fluentd, or only the API."""
    log_dir: Path = Path.home() / ".legion" / "logs"
    """Root of the local sink (records land in ``<log_dir>/model_log/<tag>/<model>/<version>/...``)."""
    log_s3_bucket: str | None = None
    """Bucket of the S3 sink."""
    log_s3_prefix: str = ""
    """Key prefix in that bucket."""
    log_s3_endpoint_url: str | None = None
    """S3 endpoint other than AWS's (MinIO, moto)."""
    log_s3_region: str | None = None
    """Region of the bucket."""
    log_s3_key_id: SecretStr | None = None
    """Access key id (else boto3's usual credential chain)."""
    log_s3_key_secret: SecretStr | None = None
    """Secret access key."""
    log_fluentd_host: str = "127.0.0.1"
    """Fluentd (or Fluent Bit) forward-protocol input."""
    log_fluentd_port: int = Field(default=24224, ge=1, le=65535)
    """Its port."""
    log_fluentd_tag: str = "legion"
    """Tag prefix: records are tagged ``<prefix>.<record tag>``."""
    feedback_store: bool = True
    """Also deliver records to the management API's feedback store (when the routing comes from the API)."""

    # --- logs
    access_log: bool = True
    """One JSON line per request on standard error (no token, no query string, no body)."""
    log_level: str = "info"
    """Level of the gateway's own log lines."""
    log_format: LogFormat = "text"
    """``text`` for people, ``json`` (one object a line) for log collectors."""

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

"""``ApiSettings``: what ``legion api`` can be told, from flags or ``LEGION_API_*`` variables."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import SettingsConfigDict

from legion.core.settings import LegionSettings, legion_home
from legion.environments.settings import EnvironmentSettings
from legion.images.settings import ImageSettings


class ApiSettings(LegionSettings):
    """Settings of the management API (Legion's EDI)."""

    model_config = SettingsConfigDict(env_prefix="LEGION_API_", env_nested_delimiter="__", extra="ignore", frozen=True)

    host: str = "127.0.0.1"
    """Address to bind; loopback by default."""
    port: int = Field(default=5080, ge=0, le=65535)
    """TCP port; 0 picks a free one (printed on start)."""
    data_dir: Path = Field(default_factory=legion_home)
    """Where the SQLite database, the generated keys and local artifacts live."""
    database_url: str | None = None
    """SQLAlchemy URL; default ``sqlite:///<data_dir>/legion.db``. PostgreSQL: ``postgresql+psycopg://...``."""
    dev: bool = False
    """Turn authentication off (``legion api --dev``); only for a laptop, and said loudly on start."""
    token_secret: SecretStr | None = None
    """HS256 key for API and model tokens; generated once into ``data_dir`` when not given."""
    encryption_keys: list[SecretStr] = Field(default_factory=list)
    """Fernet keys for connection secrets at rest, newest first; generated once into ``data_dir`` when empty."""
    max_token_ttl_s: float = Field(default=30 * 24 * 3600.0, gt=0)
    """Longest lifetime a token may be issued with; longer requests are capped."""
    api_audience: str = "legion-api"
    """``aud`` of tokens that open this API."""
    model_audience: str = "legion-model-api"
    """``aud`` of tokens that open the model APIs behind the gateway."""
    max_body_bytes: int = Field(default=4 * 1024 * 1024, ge=1024)
    """Largest request body accepted; a larger one gets 413."""
    max_header_bytes: int = Field(default=64 * 1024, ge=1024)
    """Largest request head (request line and headers) accepted, in bytes; a larger one gets 431 before it is read
    further (Envoy's limit is of this size)."""
    runtime: Literal["none", "memory", "local"] = "local"
    """Where deployments run: ``local`` processes, ``memory`` (a fake, for tests) or ``none`` (store only)."""
    resync_s: float = Field(default=10.0, gt=0)
    """How often the reconcile loop re-checks converged deployments (and polls for other writers)."""
    sandbox: bool = True
    """Run user code (trainings, packagings and replicas of the local runtime) in a bubblewrap sandbox that hides
    the data directory, keys and database; without bubblewrap it is refused. ``false`` runs it unconfined, as the
    API's user with the API's files: unsafe, for a single-user laptop (``--dev`` does so too when bubblewrap is
    missing)."""
    enforce_limits: bool = True
    """Hold each local training, packaging and replica to its ``resources.limits`` (memory, CPU) in a cgroup of its
    own, where this machine lets the API make cgroups (root, or a delegated cgroup v2 subtree); every status says
    in ``enforcedLimits`` what is enforced and how. ``false`` enforces nothing."""
    allowed_roots: list[Path] = Field(default_factory=lambda: [Path.cwd()])
    """Directories that ``local`` Connection URIs, training ``localPath``, deployment ``image`` paths and imported
    model paths may name (a JSON list in ``LEGION_API_ALLOWED_ROOTS``; default: the API's working directory). The
    platform's own model and package stores are always allowed, the rest of its data directory never."""
    stop_replicas_on_exit: bool = False
    """Stop every replica when the API stops (``legion up`` does; by default they run on and a restart adopts them)."""
    scale_to_zero_idle_s: float = Field(default=300.0, gt=0)
    """How long a ``minReplicas: 0`` deployment keeps the replica a request woke, after the last such request."""
    environments: EnvironmentSettings = Field(default_factory=EnvironmentSettings)
    """Where the models' virtualenvs of ``envManager: virtualenv`` packagings are kept and which uv makes them
    (``LEGION_ENVS_CACHE_DIR``, ``LEGION_ENVS_UV``)."""
    images: ImageSettings = Field(default_factory=ImageSettings)
    """Where ``docker-rest`` packagings build images: the container storage (``LEGION_IMAGES_STORAGE_DIR``; none:
    the API user's own), the base image's cache (``LEGION_IMAGES_CACHE_DIR``) and the build's CA bundle."""

    gateway_url: str | None = None
    """Where the gateway in front of this API is reached (``http://host:port``): routes show it in ``edgeUrl``."""

    feedback_window_s: float = Field(default=3600.0, gt=0)
    """Online quality (``/api/v1/quality``, ``legion_feedback_*``) covers the predictions made this long ago."""
    feedback_retention_s: float = Field(default=7 * 24 * 3600.0, gt=0)
    """Logged predictions and feedback older than this are dropped from the feedback store (the sinks keep theirs)."""

    def resolved_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'legion.db'}"

"""``ImageSettings``: where images are built and stored, and what the build may use from this machine.

Read from ``LEGION_IMAGES_*`` variables by the entry point (the CLI command) and passed down. With no
``storage_dir`` the tools use the container storage of the user (what ``podman images`` shows), which is what a
data scientist wants from ``legion model image``; tests give a private directory so they never touch it.
"""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from legion.core.settings import LegionSettings

_CA_CANDIDATES = ("/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt")


def _default_cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "legion" / "images"


class ImageSettings(LegionSettings):
    """Settings of the image builder (``LEGION_IMAGES_`` prefix)."""

    model_config = SettingsConfigDict(env_prefix="LEGION_IMAGES_", extra="ignore", frozen=True)

    storage_dir: Path | None = None
    """Private container storage (images, layers, run state) and tool configuration; None: the user's own."""
    cache_dir: Path = Field(default_factory=_default_cache_dir)
    """Where the Debian base image is kept as an OCI archive between builds (one file per input hash)."""
    ca_bundle: Path | None = None
    """CA bundle that pip inside the build trusts, given to it as a build secret (never stored in a layer);
    None: the first of ``PIP_CERT``, ``SSL_CERT_FILE`` and the system bundle that exists."""
    apt_sources: tuple[Path, ...] = (Path("/etc/apt/sources.list"), Path("/etc/apt/sources.list.d"))
    """Where the Debian mirror for debootstrap is read from (this machine's apt sources)."""
    debian_mirror: str | None = None
    """Debian mirror URL for debootstrap; None: the first one in ``apt_sources``."""
    debian_suite: str | None = None
    """Debian release of the base image; None: this machine's (``VERSION_CODENAME`` of /etc/os-release)."""
    insecure_registries: tuple[str, ...] = ()
    """Registries (``host:port``) spoken to over plain HTTP, e.g. a registry on 127.0.0.1 in tests."""
    timeout_s: float = 1800.0
    """Longest one tool call (a build, a push) may take."""

    def pip_ca_bundle(self) -> Path | None:
        """The CA bundle handed to pip in the build, or None when this machine has none."""
        if self.ca_bundle is not None:
            return self.ca_bundle
        for candidate in (os.environ.get("PIP_CERT"), os.environ.get("SSL_CERT_FILE"), *_CA_CANDIDATES):
            if candidate and Path(candidate).is_file():
                return Path(candidate)
        return None

"""What the image tests share: whether podman can run here (and why not), and the loopback registry's value."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BASE_CACHE = ROOT / ".cache" / "images"
"""Where the Debian base image is kept between test sessions (gitignored)."""


def _why_not_runnable() -> str | None:
    missing = [tool for tool in ("podman", "skopeo", "docker-registry") if shutil.which(tool) is None]
    if missing:
        return f"the container tools are not installed ({', '.join(missing)}; scripts/setup.sh installs them as root)"
    if os.geteuid() != 0 and not any(BASE_CACHE.glob("legion-base-*.oci.tar")):
        return "no cached base image and not root: debootstrap cannot build one"
    return None


WHY_NOT = _why_not_runnable()
# The session's first image test builds the Debian base (debootstrap) and a cold venv layer in its setup: about
# 4 minutes on a quiet machine, three times that on a loaded one, past the suite's 300 s default.
requires_podman = [
    pytest.mark.containers,
    pytest.mark.timeout(1800),
    pytest.mark.skipif(WHY_NOT is not None, reason=WHY_NOT or ""),
]


@dataclass(frozen=True)
class Registry:
    """A ``docker-registry`` on 127.0.0.1 with htpasswd auth."""

    address: str
    username: str
    password: str

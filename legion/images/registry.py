"""Push a built image to a registry, and export it as an OCI archive.

    pushed = push_image(tools, "localhost/census:1.0", PushTarget("127.0.0.1:5000/census:1.0", Credentials(u, p)))
    pushed.digest                                   # sha256:..., read back from the push
    export_archive(tools, "localhost/census:1.0", Path("census.oci.tar"))

Credentials go to podman in an auth file (mode 0600, in a private temporary directory, removed after the push),
never on a command line that ``ps`` shows or a log line; the adapter redacts them from any error too.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

from legion.core.errors import ImageBuildError
from legion.images.builder import validate_reference
from legion.images.tools import ContainerTools


@dataclass(frozen=True)
class Credentials:
    """A registry user and password (never shown: ``repr`` hides the password)."""

    username: str
    password: str

    def __repr__(self) -> str:
        return f"Credentials(username={self.username!r}, password='*****')"


@dataclass(frozen=True)
class PushTarget:
    """Where to push: a full reference ``registry[:port]/repository[:tag]``, with optional credentials."""

    reference: str
    credentials: Credentials | None = None
    plain_http: bool = False
    """Speak HTTP, not HTTPS, to this registry (one on loopback, or a connection whose URI says ``http://``)."""

    @property
    def registry(self) -> str:
        return self.reference.split("/", 1)[0]


@dataclass(frozen=True)
class PushedImage:
    """A pushed image: its reference and the manifest digest the registry stored."""

    reference: str
    digest: str

    @property
    def pinned(self) -> str:
        """``repository@sha256:...``, the reference that always names exactly this image."""
        repository = self.reference.rsplit(":", 1)[0] if ":" in self.reference.split("/")[-1] else self.reference
        return f"{repository}@{self.digest}"


def push_image(tools: ContainerTools, local: str, target: PushTarget) -> PushedImage:
    """Push the local image ``local`` to ``target`` and return the digest the registry stored."""
    validate_reference(target.reference)
    secrets = [target.credentials.password] if target.credentials else []
    with tempfile.TemporaryDirectory(prefix="legion-push-") as scratch:
        digest_file = Path(scratch) / "digest"
        args = ["push", "--quiet", "--digestfile", str(digest_file)]
        if target.plain_http:
            args.append("--tls-verify=false")
        if target.credentials is not None:
            args += ["--authfile", str(_auth_file(Path(scratch), target.registry, target.credentials))]
        tools.podman(*args, local, f"docker://{target.reference}", secrets=secrets)
        digest = digest_file.read_text(encoding="utf-8").strip() if digest_file.is_file() else ""
    if not digest.startswith("sha256:"):
        raise ImageBuildError(f"podman pushed {target.reference} but reported no digest")
    return PushedImage(reference=target.reference, digest=digest)


def export_archive(tools: ContainerTools, local: str, output: Path) -> Path:
    """Write the local image ``local`` to ``output`` as an OCI archive (what ``podman load`` reads)."""
    output.parent.mkdir(parents=True, exist_ok=True)
    partial = output.with_name(output.name + ".partial")
    partial.unlink(missing_ok=True)
    tools.podman("save", "--quiet", "--format", "oci-archive", "--output", str(partial), local)
    partial.replace(output)
    return output


def _auth_file(directory: Path, registry: str, credentials: Credentials) -> Path:
    token = base64.b64encode(f"{credentials.username}:{credentials.password}".encode()).decode()
    path = directory / "auth.json"
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        json.dump({"auths": {registry: {"auth": token}}}, handle)
    return path

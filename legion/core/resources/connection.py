"""``Connection``: where code, data, models and images live (git, object stores, registries, a local directory).

Secrets are never shown back: ``mask_secrets`` replaces each set secret by ``*****`` for every read, and
``merge_secrets`` lets an update send ``*****`` back to mean "keep what is stored", so ``get -o yaml``, edit,
``apply`` works without retyping a password.
"""

from __future__ import annotations

from typing import Final, Literal, get_args

from pydantic import Field

from legion.core.errors import InvalidInputError
from legion.core.resources.base import NoStatus, ResourceBase, Text, WireModel

ConnectionType = Literal["git", "s3", "gcs", "azureblob", "docker", "ecr", "local"]
CONNECTION_TYPES: Final[tuple[str, ...]] = get_args(ConnectionType)

SECRET_MASK: Final = "*****"  # noqa: S105  # the mask shown instead of a secret, not a secret
# Wire name → Python name. keyID is masked too, as Legion (ODAHU) does: for some stores it identifies a private key.
_SECRETS: Final = {"password": "password", "keyID": "key_id", "keySecret": "key_secret"}
SECRET_FIELDS: Final[tuple[str, ...]] = tuple(_SECRETS)


class ConnectionSpec(WireModel):
    """Legion's connection fields; which ones a type uses is up to the trainer, packager or runtime that reads it."""

    type: ConnectionType
    uri: Text = Field(description="repository URL, bucket URI, registry host or local directory")
    reference: str | None = Field(default=None, description="git: the default branch, tag or commit")
    region: str | None = Field(default=None, description="cloud region (s3, ecr) or GCP project (gcs)")
    username: str | None = None
    password: str | None = Field(default=None, repr=False)
    key_id: str | None = Field(default=None, alias="keyID", repr=False)
    key_secret: str | None = Field(default=None, repr=False, description="SSH private key or cloud secret key")
    public_key: str | None = Field(default=None, description="git over SSH: the host's public key")
    description: str | None = None
    web_ui_link: str | None = Field(default=None, alias="webUILink")


class Connection(ResourceBase):
    kind: Literal["Connection"] = "Connection"
    spec: ConnectionSpec
    status: NoStatus = Field(default_factory=NoStatus)


def mask_secrets(spec: ConnectionSpec) -> ConnectionSpec:
    """A copy of ``spec`` with every set secret (``SECRET_FIELDS``) replaced by ``*****``.

    >>> mask_secrets(ConnectionSpec(type="git", uri="git@host:a/b.git", key_secret="...")).key_secret
    '*****'
    """
    masked = {attr: SECRET_MASK for attr in _SECRETS.values() if getattr(spec, attr)}
    return spec.model_copy(update=masked)


def merge_secrets(new_spec: ConnectionSpec, stored_spec: ConnectionSpec | None) -> ConnectionSpec:
    """``new_spec`` with each secret sent as ``*****`` replaced by the stored one; an omitted secret is cleared.

    ``stored_spec`` is None on create. A ``*****`` with nothing stored behind it is refused, naming the field,
    rather than saved as the literal password.
    """
    kept: dict[str, str] = {}
    problems: dict[str, str] = {}
    for wire, attr in _SECRETS.items():
        if getattr(new_spec, attr) != SECRET_MASK:
            continue
        stored = getattr(stored_spec, attr) if stored_spec is not None else None
        if stored:
            kept[attr] = stored
        else:
            problems[f"spec.{wire}"] = f"{SECRET_MASK!r} keeps the stored secret, but none is stored: send the secret"
    if problems:
        raise InvalidInputError.for_fields(problems, prefix="invalid Connection")
    return new_spec.model_copy(update=kept)

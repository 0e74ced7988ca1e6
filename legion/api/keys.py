"""The API's keys: given in settings, or generated once and kept in ``data_dir/keys.json`` (mode 0600).

A laptop install then has working auth and encryption at rest with nothing to configure, and a restart keeps
every token and stored secret valid. Keys are never logged.
"""

from __future__ import annotations

import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet

from legion.api.settings import ApiSettings


@dataclass(frozen=True, slots=True)
class Keys:
    token_secret: str
    encryption_keys: tuple[str, ...]


def load_keys(settings: ApiSettings) -> Keys:
    path = settings.data_dir / "keys.json"
    stored = _read(path)
    if stored:
        path.chmod(0o600)  # a file made by hand (or by an old version) with a wider mode is narrowed
    token_secret = settings.token_secret.get_secret_value() if settings.token_secret else stored.get("tokenSecret")
    kept = stored.get("encryptionKeys")
    encryption = [k.get_secret_value() for k in settings.encryption_keys] or (kept if isinstance(kept, list) else [])
    if not token_secret or not encryption:
        token_secret = token_secret or secrets.token_urlsafe(48)
        encryption = encryption or [Fernet.generate_key().decode()]
        _write(path, {"tokenSecret": token_secret, "encryptionKeys": encryption})
    return Keys(str(token_secret), tuple(str(k) for k in encryption))


def _read(path: Path) -> dict[str, object]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    return data if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, object]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        json.dump(data, out)

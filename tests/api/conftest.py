"""A real ``legion api`` on 127.0.0.1 (port 0) with its own data directory, and tokens for each role."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest

from tests.support.server import ServerProcess, wait_until


@dataclass(frozen=True)
class Api:
    url: str
    data_dir: Path
    admin: str
    scientist: str
    viewer: str

    def headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"}

    def signed(self, **claims: object) -> str:
        """A token signed with this installation's key, with the given claims (to forge the edge cases)."""
        secret = json.loads((self.data_dir / "keys.json").read_text())["tokenSecret"]
        now = int(time.time())
        payload = {"sub": "x", "aud": "legion-api", "iss": "legion", "iat": now, "exp": now + 600, "jti": "j1",
                   "roles": ["admin"], **claims}  # fmt: skip
        return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm="HS256")


def cli_token(data_dir: Path, role: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "legion", "api", "--data-dir", str(data_dir), "token", "--role", role, "--subject", role],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return done.stdout.strip()


def start_api(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> ServerProcess:
    """The API, allowed to read host paths in the tests' temporary trees (models, code, data) and the checkout;
    ``env`` adds variables (``LEGION_ENVS_CACHE_DIR``)."""
    command = [sys.executable, "-m", "legion", "api", "--port", "0", "--data-dir", str(data_dir), *extra]
    roots = json.dumps([tempfile.gettempdir(), str(data_dir.parent), str(Path.cwd())])
    server = ServerProcess(data_dir, command=command, env={"LEGION_API_ALLOWED_ROOTS": roots, **(env or {})})
    server.wait_ready(path="/health")
    return server


LocalApi = tuple[ServerProcess, dict[str, str]]
"""An API with the local runtime and an admin's headers."""


@contextlib.contextmanager
def local_api(data_dir: Path, env: dict[str, str] | None = None) -> Iterator[LocalApi]:
    """The API with the local runtime on ``data_dir`` and an admin's headers; afterwards every deployment, packaging
    and training it holds is deleted (and the deployments seen gone, so no replica outlives the test)."""
    server = start_api(data_dir, "--runtime", "local", env=env)
    headers = {"Authorization": f"Bearer {cli_token(data_dir, 'admin')}"}
    try:
        yield server, headers
    finally:
        for kind in ("model/deployment", "model/packaging", "model/training"):
            for item in httpx.get(f"{server.url}/api/v1/{kind}", headers=headers).json():
                httpx.delete(f"{server.url}/api/v1/{kind}/{item['id']}", headers=headers)
        deployments = f"{server.url}/api/v1/model/deployment"
        wait_until(lambda: not httpx.get(deployments, headers=headers).json(), 60, "the deployments to go")
        server.stop()


def create(api: LocalApi, path: str, document: dict[str, Any]) -> None:
    """POST ``document`` to ``/api/v1/<path>`` as the admin; it must be created."""
    server, headers = api
    answer = httpx.post(f"{server.url}/api/v1/{path}", headers=headers, json=document)
    assert answer.status_code == 201, answer.text


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data_dir = tmp_path_factory.mktemp("legion-api")
    server = start_api(data_dir, "--runtime", "none")  # the store alone: states stay as the API wrote them
    try:
        yield Api(
            server.url,
            data_dir,
            admin=cli_token(data_dir, "admin"),
            scientist=cli_token(data_dir, "data-scientist"),
            viewer=cli_token(data_dir, "viewer"),
        )
    finally:
        server.stop()

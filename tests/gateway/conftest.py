"""Real pieces for the gateway tests: replicas, gateways and tokens.

- Replicas are real HTTP servers on 127.0.0.1: ``legion serve`` of a tiny model (``toy_replica``), or the
  stand-in of ``upstream_app.py`` where a test must tell replicas apart, break one or hang one (``upstream``).
- A gateway runs either as a process (``legion gateway --routing-file``, ``GatewayProcess``), for load tests
  that need it on its own core, or in the test's event loop (``running_gateway``) with a ``StaticRoutingSource``
  the test publishes snapshots to.
- Tokens are signed with ``SECRET`` the way the management API signs them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import uvicorn

from legion.core.net import bind, url_of
from legion.core.tokens import ModelScope, TokenConfig, TokenIssuer
from legion.gateway.app import create_app
from legion.gateway.feedback import FeedbackHandler
from legion.gateway.proxy import Gateway
from legion.gateway.settings import GatewaySettings
from legion.gateway.sources import RoutingSource
from legion.model import ModelBuilder
from tests.support.during_test import require_a_running_test
from tests.support.server import ServerProcess

SECRET = "gateway-tests-only-" + "s" * 45  # 64 bytes, as long as the API's generated secrets
AUDIENCE = "legion-model-api"
UPSTREAM_APP = Path(__file__).with_name("upstream_app.py")
ISSUER = TokenIssuer(TokenConfig(secret=SECRET))


def token(*models: tuple[str, str], ttl_s: float = 600.0) -> str:
    """A model token as ``POST /api/v1/model/token`` issues it, for ``(name, version)`` scopes; only while a test
    runs (``require_a_running_test``)."""
    require_a_running_test("a test token")
    signed, _ = ISSUER.issue("tester", AUDIENCE, ttl_s, models=[ModelScope(n, v) for n, v in models])
    return signed


def bearer(signed: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {signed}"}


def deployment(ident: str, endpoints: Sequence[str], model: tuple[str, str] | None = None, *,
               min_replicas: int = 1, state: str = "Ready") -> dict[str, Any]:  # fmt: skip
    """One deployment of a routing snapshot, in the API's wire format."""
    name, version = model or (ident, "1")
    return {"id": ident, "state": state, "minReplicas": min_replicas, "maxReplicas": 2,
            "endpoints": list(endpoints), "modelName": name if endpoints or model else None,
            "modelVersion": version if endpoints or model else None, "deleting": False}  # fmt: skip


def route(ident: str, prefix: str, weights: dict[str, int], mirror: str | None = None) -> dict[str, Any]:
    return {"id": ident, "urlPrefix": prefix, "mirror": mirror,
            "modelDeployments": [{"mdName": d, "weight": w} for d, w in weights.items()]}  # fmt: skip


def snapshot(deployments: Sequence[dict[str, Any]], routes: Sequence[dict[str, Any]] = (),
             revoked: Sequence[str] = (), etag: str | None = None) -> dict[str, Any]:  # fmt: skip
    document = {"deployments": list(deployments), "routes": list(routes), "revokedTokens": list(revoked)}
    return {"etag": etag or str(hash(json.dumps(document, sort_keys=True))), **document}


def write_routing(path: Path, document: dict[str, Any]) -> None:
    """Replace the routing file at once (write, then rename), as a deployment tool would."""
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(document))
    os.replace(partial, path)


# --- replicas -------------------------------------------------------------------------------------------


def upstream(name: str, mode: str = "ok") -> ServerProcess:
    """A stand-in replica answering who it is (``mode``: ok, fail = 500, hang = never answers)."""
    server = ServerProcess(UPSTREAM_APP, command=[sys.executable, str(UPSTREAM_APP), "--name", name, "--mode", mode])
    server.wait_ready(path="/healthcheck")
    return server


@pytest.fixture(scope="session")
def toy_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Model ``toy`` version ``1``: one int column ``a``, answers ``a * 2``."""
    builder = ModelBuilder("toy", "1")
    builder.export_df(lambda df: pd.DataFrame({"double": df["a"] * 2}), pd.DataFrame({"a": [1, 2]}))
    return builder.save(tmp_path_factory.mktemp("toy") / "model")


@pytest.fixture(scope="session")
def toy_replica(toy_model: Path) -> Iterator[ServerProcess]:
    server = ServerProcess(toy_model)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def replicas() -> Iterator[dict[str, ServerProcess]]:
    """Stand-in replicas ``a``, ``b`` and ``c`` that answer, ``broken`` (500) and ``hanging``."""
    started: dict[str, ServerProcess] = {}
    try:
        for name, mode in [("a", "ok"), ("b", "ok"), ("c", "ok"), ("broken", "fail"), ("hanging", "hang")]:
            started[name] = upstream(name, mode)
        yield started
    finally:
        for server in started.values():
            server.stop()


# --- gateways -------------------------------------------------------------------------------------------


class GatewayProcess(ServerProcess):
    """``legion gateway --port 0 --routing-file FILE`` with tokens signed by ``SECRET``."""

    def __init__(
        self, routing_file: Path, *args: str, env: dict[str, str] | None = None, logs: Path | None = None
    ) -> None:
        self.logs = logs = logs or routing_file.parent / f"gateway-logs-{uuid.uuid4().hex[:8]}"
        """Its prediction log: ``logs/sink`` (the local sink) and ``logs/buffer`` (pass it on to a restart)."""
        command = [sys.executable, "-m", "legion", "gateway", "--port", "0", "--routing-file", str(routing_file),
                   "--log-dir", str(logs / "sink"), "--log-buffer-dir", str(logs / "buffer"), *args]  # fmt: skip
        super().__init__(routing_file, command=command,
                         env={"LEGION_GATEWAY_TOKEN_SECRET": SECRET, **(env or {})})  # fmt: skip
        self.wait_ready(path="/healthcheck")


@contextlib.contextmanager
def gateway_process(routing_file: Path, *args: str, env: dict[str, str] | None = None) -> Iterator[GatewayProcess]:
    server = GatewayProcess(routing_file, *args, env=env)
    try:
        yield server
    finally:
        server.stop()


def settings(**values: Any) -> GatewaySettings:
    """Gateway settings for an in-process gateway: tokens signed by ``SECRET``, no access log."""
    return GatewaySettings(token_secret=SECRET, access_log=False, **values)


@contextlib.asynccontextmanager
async def running_gateway(
    source: RoutingSource, feedback: FeedbackHandler | None = None, **values: Any
) -> AsyncIterator[tuple[str, Gateway]]:
    """A gateway served by uvicorn in the test's event loop on 127.0.0.1, port 0; yields its URL and app."""
    logs = tempfile.TemporaryDirectory(prefix="legion-test-gateway-")
    values = {"log_dir": Path(logs.name) / "sink", "log_buffer_dir": Path(logs.name) / "buffer", **values}
    app = create_app(settings(**values), source=source, feedback=feedback)
    sock = bind("127.0.0.1", 0)
    config = uvicorn.Config(app, lifespan="on", access_log=False, log_config=None, http="httptools")
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 30
    while not server.started:
        if task.done() or time.monotonic() > deadline:
            raise AssertionError("the in-process gateway did not start")
        await asyncio.sleep(0.01)
    try:
        yield url_of(sock), app
    finally:
        server.should_exit = True
        await task
        sock.close()
        logs.cleanup()

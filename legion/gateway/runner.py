"""``run(settings)``: bind the port, start one or several gateway workers, stop cleanly on SIGTERM.

The port is bound before any worker starts, so ``--port 0`` works and the address is printed once
(``listening on http://HOST:PORT``). One worker serves in this process. With several, each worker process binds
its own socket to the port with ``SO_REUSEPORT`` (the kernel spreads connections evenly), follows the routing
source itself and keeps its own pools; this process supervises them, restarts one that dies, forwards
SIGTERM/SIGINT, and ``/metrics`` of any worker aggregates all of them through a Prometheus multiprocess directory.
"""

from __future__ import annotations

import logging
import math
import multiprocessing
import os
import socket
import sys
import tempfile
from collections.abc import Callable

import uvicorn

from legion.core.errors import LegionError
from legion.core.logs import configure_logging
from legion.core.net import bind, url_of
from legion.core.workers import supervise
from legion.gateway.settings import GatewaySettings

log = logging.getLogger(__name__)


def serve(settings: GatewaySettings, sock: socket.socket | None, multiprocess_dir: str | None = None) -> int:
    """Serve until told to stop; the exit code says why it stopped."""
    from legion.gateway.app import create_app  # noqa: PLC0415  # workers import the app after the spawn
    from legion.gateway.metrics import GatewayMetrics  # noqa: PLC0415

    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(settings, metrics=GatewayMetrics(multiprocess_dir))
    except LegionError as exc:
        log.error("cannot start the gateway: %s", exc.detail)
        return exc.exit_code
    if sock is None:
        sock = bind(settings.host, settings.port)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,  # the gateway writes its own access log
        log_level=settings.log_level,
        log_config=None,
        timeout_graceful_shutdown=math.ceil(settings.graceful_timeout_s),
        server_header=False,
        backlog=2048,
    )
    uvicorn.Server(config).run(sockets=[sock])
    return 0


def _worker(settings: GatewaySettings, port: int, multiprocess_dir: str) -> None:
    # the settings object itself is pickled to the worker: a JSON dump would mask its secrets
    sys.exit(serve(settings.model_copy(update={"port": port}), None, multiprocess_dir))


def run(settings: GatewaySettings, announce: Callable[[str], None] = print) -> int:
    """Run the gateway; returns the process exit code."""
    sock = bind(settings.host, settings.port, listen=settings.workers == 1)
    announce(f"listening on {url_of(sock)}")
    if settings.workers == 1:
        return serve(settings, sock)
    with tempfile.TemporaryDirectory(prefix="legion-gateway-metrics-") as multiprocess_dir:
        # prometheus_client picks its multiprocess value store from this variable when a worker imports it
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
        return _supervise(settings, sock, multiprocess_dir)


def _supervise(settings: GatewaySettings, sock: socket.socket, multiprocess_dir: str) -> int:
    from prometheus_client import multiprocess  # noqa: PLC0415  # after PROMETHEUS_MULTIPROC_DIR is set

    context = multiprocessing.get_context("spawn")
    port = sock.getsockname()[1]

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(settings, port, multiprocess_dir), daemon=False)
        process.start()
        return process

    try:
        return supervise(
            start,
            settings.workers,
            fatal=lambda code: code >= 2,  # a LegionError's exit code: the settings are wrong, another would fail too
            on_exit=multiprocess.mark_process_dead,
            name="gateway worker",
        )
    finally:
        sock.close()

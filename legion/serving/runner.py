"""``run(settings)``: bind the port, start one or several workers, drain on SIGTERM.

The listening port is bound here, before any worker starts, so ``--port 0`` works and the port is printed once
(``listening on http://HOST:PORT``). One worker serves in this process. With several, each worker process binds
its own socket to the same port with ``SO_REUSEPORT``, so the kernel spreads connections evenly (a shared
accept socket lets the busiest worker take most keep-alive connections); this process supervises them,
forwards SIGTERM/SIGINT and aggregates their metrics through a Prometheus multiprocess directory.
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

from legion.core.errors import LegionError, ModelFormatError
from legion.core.logs import configure_logging
from legion.core.net import bind, url_of
from legion.core.workers import supervise
from legion.serving.settings import ServerSettings

log = logging.getLogger(__name__)


def serve(settings: ServerSettings, sock: socket.socket | None, multiprocess_dir: str | None = None) -> int:
    """Serve until told to stop; the exit code says why it stopped.

    With a ``sock`` (one worker) the model loads in the background while health probes answer. Without one (a
    worker among several) the model loads first and only then does this worker take its share of the port, so
    no connection ever reaches a worker that is still loading.
    """
    from legion.serving.app import create_app  # noqa: PLC0415  # workers import the app after the fork
    from legion.serving.metrics import ServerMetrics  # noqa: PLC0415

    exit_code = 0
    server: uvicorn.Server | None = None

    def failed(exc: LegionError) -> None:
        nonlocal exit_code
        exit_code = exc.exit_code
        if server is not None:
            server.should_exit = True

    configure_logging(settings.log_level, settings.log_format)
    try:
        app = create_app(
            settings, metrics=ServerMetrics(multiprocess_dir), on_load_failure=failed, preload=sock is None
        )
    except LegionError as exc:
        log.error("cannot serve the model: %s", exc.detail)
        return exc.exit_code
    if sock is None:
        sock = bind(settings.host, settings.port)
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        log_config=None,  # keep Legion's handlers: uvicorn's lines come out in the same format
        timeout_graceful_shutdown=math.ceil(settings.graceful_timeout_s),
        server_header=False,
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
    return exit_code


def _worker(settings_json: str, port: int, multiprocess_dir: str) -> None:
    settings = ServerSettings.model_validate_json(settings_json).model_copy(update={"port": port})
    sys.exit(serve(settings, None, multiprocess_dir))


def run(settings: ServerSettings, announce: Callable[[str], None] = print) -> int:
    """Start serving ``settings.model_path``; returns the process exit code."""
    sock = bind(settings.host, settings.port, listen=settings.workers == 1)
    port = sock.getsockname()[1]
    announce(f"listening on {url_of(sock)}")
    if settings.workers == 1:
        return serve(settings, sock)
    with tempfile.TemporaryDirectory(prefix="legion-metrics-") as multiprocess_dir:
        # prometheus_client picks its multiprocess value store from this variable when a worker imports it
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
        return _supervise(settings, port, multiprocess_dir, sock)


def _supervise(settings: ServerSettings, port: int, multiprocess_dir: str, sock: socket.socket) -> int:
    from prometheus_client import multiprocess  # noqa: PLC0415  # after PROMETHEUS_MULTIPROC_DIR is set

    context = multiprocessing.get_context("spawn")
    payload = settings.model_dump_json()

    def start() -> multiprocessing.process.BaseProcess:
        process = context.Process(target=_worker, args=(payload, port, multiprocess_dir), daemon=False)
        process.start()
        return process

    try:
        return supervise(
            start,
            settings.workers,
            fatal=lambda code: code == ModelFormatError.exit_code,  # the model cannot load: nor would it again
            on_exit=multiprocess.mark_process_dead,
            name="worker",
        )
    finally:
        sock.close()

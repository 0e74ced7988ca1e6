"""``run(settings)``: start one or several model server workers on the server's port, drain on SIGTERM.

The hosting (the port bound before any worker starts and announced once, workers on ``SO_REUSEPORT``, their
supervisor, the multiprocess metrics directory, uvicorn) is ``legion.hosting``'s; this module says what one worker
does: load the model, then serve it.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

import uvicorn

from legion.core.errors import LegionError, ModelFormatError
from legion.core.logs import configure_logging
from legion.core.net import bind
from legion.hosting.http import HttpOptions, http_server
from legion.hosting.workers import run_workers
from legion.serving.settings import ServerSettings

log = logging.getLogger(__name__)


def serve(settings: ServerSettings, sock: socket.socket | None, multiprocess_dir: str | None = None) -> int:
    """Serve until told to stop; the exit code says why it stopped.

    With a ``sock`` (one worker) the model loads in the background while health probes answer. Without one (a
    worker among several) the model loads first and only then does this worker take its share of the port, so
    no connection ever reaches a worker that is still loading.
    """
    from legion.serving.app import create_app  # noqa: PLC0415  # workers import the app after the spawn
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
    options = HttpOptions(
        log_level=settings.log_level,
        graceful_timeout_s=settings.graceful_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )
    server = http_server(app, options)
    server.run(sockets=[sock])
    return exit_code


def run(settings: ServerSettings, announce: Callable[[str], None] = print) -> int:
    """Start serving ``settings.model_path``; returns the process exit code."""
    return run_workers(
        settings,
        serve,
        announce=announce,
        fatal=lambda code: code == ModelFormatError.exit_code,  # the model cannot load: nor would it again
        name="model server",
    )

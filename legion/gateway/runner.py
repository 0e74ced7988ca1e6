"""``run(settings)``: start one or several gateway workers on the gateway's port, stop cleanly on SIGTERM.

The hosting (the port bound before any worker starts and announced once, workers on ``SO_REUSEPORT``, their
supervisor, the multiprocess metrics directory, uvicorn) is ``legion.hosting``'s; this module says what one worker
does. Each worker follows the routing source itself and keeps its own pools; ``/metrics`` of any worker
aggregates all of them.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Callable

from legion.core.errors import LegionError
from legion.core.logs import configure_logging
from legion.core.net import bind
from legion.gateway.settings import GatewaySettings
from legion.hosting.http import HttpOptions, http_server
from legion.hosting.workers import run_workers

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
    options = HttpOptions(
        log_level=settings.log_level,
        graceful_timeout_s=settings.graceful_timeout_s,
        max_header_bytes=settings.max_header_bytes,
    )
    http_server(app, options).run(sockets=[sock])
    return 0


def run(settings: GatewaySettings, announce: Callable[[str], None] = print) -> int:
    """Run the gateway; returns the process exit code."""
    return run_workers(
        settings,
        serve,
        announce=announce,
        fatal=lambda code: code >= 2,  # a LegionError's exit code: the settings are wrong, another would fail too
        name="gateway",
    )

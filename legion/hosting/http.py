"""``http_server(app, options)``: the uvicorn server every Legion service runs, configured in this one place.

uvloop and httptools (the fastest pair measured, DESIGN §8), the lifespan on, no access log of uvicorn's own (the
gateway writes its own), no ``Server`` header, and ``log_config=None`` so uvicorn's lines go through Legion's
handlers (``legion.core.logs``). Limits that every service shares belong here: the largest request head
(``max_header_bytes``, answered with 431 by ``heads.head_limited``'s protocol before the app runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from types import FrameType

import uvicorn
from starlette.types import ASGIApp

from legion.hosting.heads import ErrorFormat, head_limited

BACKLOG = 2048
"""Connections the kernel queues before the app accepts them (as ``legion.core.net.bind`` listens)."""


@dataclass(frozen=True)
class HttpOptions:
    """What a service tells its HTTP server."""

    log_level: str = "info"
    """Level of uvicorn's own log lines."""
    graceful_timeout_s: float = 30.0
    """On SIGTERM, how long in-flight requests may take to finish (uvicorn rounds it up to whole seconds)."""
    max_header_bytes: int = 64 * 1024
    """Largest request head (request line and headers) in bytes; a larger one is refused with 431, unread."""
    errors: ErrorFormat = "json"
    """How the answers given before the app runs (431) are worded: ``json`` or ``problem`` (problem+json)."""


def http_server(app: ASGIApp, options: HttpOptions, on_exit: Callable[[], None] | None = None) -> uvicorn.Server:
    """The server for ``app``; run it with ``server.run(sockets=[sock])`` on a socket bound by the caller.

    ``on_exit`` runs when the server is told to stop, before it waits for open requests (the management API
    releases its held long-polls there: the lifespan's shutdown runs only after those requests end).
    """
    config = uvicorn.Config(
        app,
        loop="uvloop",
        http=head_limited(options.max_header_bytes, options.errors),
        lifespan="on",
        access_log=False,
        log_level=options.log_level,
        log_config=None,
        timeout_graceful_shutdown=math.ceil(options.graceful_timeout_s),
        server_header=False,
        backlog=BACKLOG,
    )
    return _Server(config, on_exit) if on_exit is not None else uvicorn.Server(config)


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when it is asked to stop."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)

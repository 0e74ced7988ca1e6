"""``run(settings)``: serve the management API with uvicorn on a port bound here (so ``--port 0`` works), and
``admin_token(settings)``: sign an admin token with the keys in the data directory, for the first login."""

from __future__ import annotations

import logging
from collections.abc import Callable

from legion.api.app import create_app
from legion.api.keys import load_keys
from legion.api.settings import ApiSettings
from legion.core.logs import LogFormat, configure_logging
from legion.core.net import bind, url_of
from legion.core.tokens import TokenConfig, TokenIssuer
from legion.hosting.http import HttpOptions, http_server

GRACEFUL_TIMEOUT_S = 10.0
"""On SIGTERM, how long open requests may take to finish (held long-polls are released at once)."""


def run(
    settings: ApiSettings,
    announce: Callable[[str], None] = print,
    log_level: str = "info",
    log_format: LogFormat = "text",
) -> int:
    configure_logging(log_level, log_format)
    if log_level != "debug":  # one line per health probe of every replica says nothing
        logging.getLogger("httpx").setLevel(logging.WARNING)
    sock = bind(settings.host, settings.port)
    app = create_app(settings)
    announce(f"listening on {url_of(sock)}")
    # uvicorn waits for open requests before the lifespan's shutdown runs, so held long-polls are released as soon
    # as the server is told to stop
    options = HttpOptions(
        log_level=log_level,
        graceful_timeout_s=GRACEFUL_TIMEOUT_S,
        max_header_bytes=settings.max_header_bytes,
        errors="problem",
    )
    http_server(app, options, on_exit=app.state.routing_signal.close).run(sockets=[sock])
    return 0


def admin_token(settings: ApiSettings, subject: str, roles: list[str], ttl_s: float) -> str:
    """A token signed with this installation's key: whoever can read the data directory is its administrator."""
    keys = load_keys(settings)
    issuer = TokenIssuer(TokenConfig(secret=keys.token_secret, max_ttl_s=settings.max_token_ttl_s))
    token, _ = issuer.issue(subject, settings.api_audience, ttl_s, roles=roles)
    return token

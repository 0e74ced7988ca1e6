"""``run(settings)``: serve the management API with uvicorn on a port bound here (so ``--port 0`` works), and
``admin_token(settings)``: sign an admin token with the keys in the data directory, for the first login."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from types import FrameType

import uvicorn

from legion.api.app import create_app
from legion.api.keys import load_keys
from legion.api.settings import ApiSettings
from legion.core.logs import LogFormat, configure_logging
from legion.core.net import bind, url_of
from legion.core.tokens import TokenConfig, TokenIssuer


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
    config = uvicorn.Config(
        app, lifespan="on", access_log=False, log_config=None, log_level=log_level, server_header=False,
        timeout_graceful_shutdown=math.ceil(10.0),
    )  # fmt: skip
    _Server(config, on_exit=app.state.routing_signal.close).run(sockets=[sock])
    return 0


class _Server(uvicorn.Server):
    """uvicorn's server, telling the app when it is asked to stop: uvicorn waits for open requests before the
    lifespan's shutdown runs, so held long-polls must be released here, not there."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None]) -> None:
        super().__init__(config)
        self._on_exit = on_exit

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._on_exit()
        super().handle_exit(sig, frame)


def admin_token(settings: ApiSettings, subject: str, roles: list[str], ttl_s: float) -> str:
    """A token signed with this installation's key: whoever can read the data directory is its administrator."""
    keys = load_keys(settings)
    issuer = TokenIssuer(TokenConfig(secret=keys.token_secret, max_ttl_s=settings.max_token_ttl_s))
    token, _ = issuer.issue(subject, settings.api_audience, ttl_s, roles=roles)
    return token

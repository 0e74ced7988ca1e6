"""``create_app(settings)``: the gateway's composition root.

Wires the routing source (the management API's long-poll, or a file), the token checks (HS256 with the API's
secret, or RS256 with an identity provider's JWKS), the forwarder with its pools, the feedback handler, metrics
and the access log into one ``Gateway`` ASGI app. Tests and embedders pass their own ``source`` (e.g.
``StaticRoutingSource``) and ``feedback`` handler::

    app = create_app(GatewaySettings(api_url="http://127.0.0.1:5080", keys_file=Path("~/.legion/keys.json")))
    uvicorn.run(app, loop="uvloop", http="httptools")   # or legion.gateway.runner.run(settings)
"""

from __future__ import annotations

import logging

from legion.core.errors import InvalidInputError
from legion.core.tokens import TokenConfig, TokenVerifier
from legion.gateway.auth import Authenticator
from legion.gateway.feedback import FeedbackHandler, LogFeedbackSink, RecordingFeedbackHandler
from legion.gateway.forwarding import Forwarder
from legion.gateway.jwks import JwksKeys
from legion.gateway.metrics import GatewayMetrics
from legion.gateway.predictions import PredictionRecorder
from legion.gateway.proxy import Gateway, Lifespan, ProxyOptions
from legion.gateway.settings import GatewaySettings
from legion.gateway.sources import ApiRoutingSource, ApiTokens, FileRoutingSource, RoutingSource, RoutingWatcher
from legion.gateway.table import RoutingTable

log = logging.getLogger(__name__)
# Claims an identity provider's token must carry; it need not have a jti (then it cannot be revoked here).
_IDP_CLAIMS = ("exp", "sub", "aud", "iss")


def make_source(settings: GatewaySettings) -> RoutingSource:
    """The routing source the settings name: a routing file, else the management API."""
    if settings.routing.routing_file is not None:
        return FileRoutingSource(settings.routing.routing_file)
    if settings.routing.api_url is None:
        raise InvalidInputError("tell the gateway where its routing comes from: an API URL or a routing file")
    token = settings.routing.api_token.get_secret_value() if settings.routing.api_token else None
    tokens = ApiTokens(token, settings.hs256_secret() if token is None else None, settings.routing.api_audience)
    return ApiRoutingSource(settings.routing.api_url, tokens, wait_s=settings.routing.poll_wait_s)


def make_authenticator(
    settings: GatewaySettings, watcher: RoutingWatcher
) -> tuple[Authenticator | None, JwksKeys | None]:
    """The token checks the settings ask for; ``None`` when auth is off."""
    if not settings.tokens.enabled:
        log.warning("AUTHENTICATION IS OFF: every model behind this gateway is open to anyone who reaches it")
        return None, None

    def revoked() -> frozenset[str]:
        return watcher.table.revoked

    checks = settings.tokens
    if checks.jwks_url is not None:
        jwks = JwksKeys(checks.jwks_url, checks.jwks_refresh_s)
        config = TokenConfig(secret="", issuer=checks.issuer, algorithm="RS256", leeway_s=checks.leeway_s,
                             required_claims=_IDP_CLAIMS)  # fmt: skip
        verifier = TokenVerifier(config, key_for=jwks.key_for)
        return Authenticator(verifier, checks.audience, revoked, jwks=jwks, leeway_s=checks.leeway_s), jwks
    secret = checks.hs256_secret()
    if secret is None:
        raise InvalidInputError("the gateway checks tokens: give the API's keys file, the token secret or a JWKS URL")
    config = TokenConfig(secret=secret, issuer=checks.issuer, leeway_s=checks.leeway_s)
    return Authenticator(TokenVerifier(config), checks.audience, revoked, leeway_s=checks.leeway_s), None


def create_app(
    settings: GatewaySettings,
    *,
    source: RoutingSource | None = None,
    feedback: FeedbackHandler | None = None,
    metrics: GatewayMetrics | None = None,
) -> Gateway:
    metrics = metrics or GatewayMetrics()
    forwarder = Forwarder(
        metrics,
        eject_s=settings.upstream.eject_s,
        connect_timeout_s=settings.upstream.connect_timeout_s,
        upstream_timeout_s=settings.upstream.timeout_s,
        max_idle=settings.upstream.max_idle_connections,
        idle_timeout_s=settings.upstream.idle_timeout_s,
        mirror_max_in_flight=settings.upstream.mirror_max_in_flight,
    )

    def installed(table: RoutingTable) -> None:
        metrics.routing_updates.inc()
        forwarder.prune(table)

    routing = source if source is not None else make_source(settings)
    watcher = RoutingWatcher(routing, on_update=installed)
    authenticator, jwks = make_authenticator(settings, watcher)
    background = () if jwks is None else (jwks.run,)
    closing = (routing.close,) if jwks is None else (routing.close, jwks.close)
    recorder = None
    if settings.records.enabled:
        recorder = PredictionRecorder.open(settings, on_drop=metrics.prediction_log_dropped.inc)
        closing = (*closing, recorder.close)
    if feedback is None:
        feedback = RecordingFeedbackHandler(LogFeedbackSink() if recorder is None else recorder)
    options = ProxyOptions(
        max_body_bytes=settings.max_body_bytes,
        cold_start_timeout_s=settings.upstream.cold_start_timeout_s,
        demand_interval_s=settings.upstream.demand_interval_s,
        access_log=settings.access_log,
    )
    lifespan = Lifespan(background=background, on_close=closing)
    return Gateway(
        watcher, forwarder, authenticator, feedback, metrics, options=options, recorder=recorder, lifespan=lifespan
    )

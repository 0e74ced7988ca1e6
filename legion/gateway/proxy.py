"""The gateway's request path, as one raw ASGI app (no framework on the hot path).

For each request, in order: the request id (``Request-ID`` or ``X-Request-ID``, else a new UUID4, random
enough to be unique across processes and restarts), what the path addresses (``table.resolve``; a write of model
properties is refused with 403: they are the management API's to set, ``table.writes_properties``), the token
(401 with a JSON body on any failure; health and metrics paths stay open), the body (413 over the limit), the
deployment (a route's weighted choice), its scope check, a wait for a first replica if it has none (scale from
zero: the runtime is asked for one and the request answered once it is ready), the call to a replica
(``Forwarder``), a mirrored copy, the prediction's records (``predictions``: appended before the caller has the
answer, so a 200 is never without its record), then the answer with ``Request-ID``, the metrics and one
access-log line.

Errors are answered as the model APIs answer them, ``{"error": "..."}`` with the ``LegionError``'s status.
The gateway's own paths are ``/healthcheck`` (200 once a routing table is loaded) and ``/metrics``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Final, NamedTuple

import orjson
from starlette.types import Message, Receive, Scope, Send

from legion.core.errors import (
    BadRequestError,
    ForbiddenError,
    LegionError,
    NotFoundError,
    PayloadTooLargeError,
    UnauthorizedError,
    UnavailableError,
)
from legion.core.ids import request_id
from legion.core.tokens import Claims, repeated_authorization
from legion.feedback.entries import ModelCall
from legion.gateway.accesslog import AccessLog
from legion.gateway.auth import Authenticator, authorize
from legion.gateway.balancing import WeightedChoice
from legion.gateway.feedback import FeedbackHandler, FeedbackRequest
from legion.gateway.forwarding import Forwarder
from legion.gateway.metrics import GatewayMetrics
from legion.gateway.predictions import PredictionRecorder, is_prediction
from legion.gateway.sources import RoutingWatcher
from legion.gateway.table import Deployment, RoutingTable, Target, resolve, writes_properties

log = logging.getLogger(__name__)

# Not passed on to replicas: hop-by-hop fields, what the upstream request sets itself, and the token.
_DROP_REQUEST: Final = frozenset({
    b"host", b"content-length", b"connection", b"keep-alive", b"proxy-connection", b"proxy-authorization",
    b"te", b"trailer", b"transfer-encoding", b"upgrade", b"expect", b"authorization", b"request-id",
    b"x-request-id",
})  # fmt: skip
# Not passed back to callers: hop-by-hop fields and what the gateway sets itself.
_DROP_RESPONSE: Final = frozenset({
    b"content-length", b"connection", b"keep-alive", b"transfer-encoding", b"trailer", b"upgrade", b"date",
    b"server", b"request-id",
})  # fmt: skip
_JSON: Final = (b"content-type", b"application/json")
_WWW_AUTHENTICATE: Final = (b"www-authenticate", b'Bearer realm="legion", error="invalid_token"')
_MAX_REQUEST_ID: Final = 200


class _Exchange:
    """What is known of one request as it goes through; read by the metrics and the access log."""

    __slots__ = ("deployment", "replica", "route", "subject", "upstream_s", "waited_s")

    def __init__(self) -> None:
        self.route = "none"
        self.deployment = ""
        self.replica = ""
        self.subject = ""
        self.upstream_s = 0.0
        self.waited_s = 0.0


Lifetime = Callable[[], Coroutine[Any, Any, None]]


@dataclass(frozen=True, slots=True)
class ProxyOptions:
    """How the gateway treats each request (from ``GatewaySettings``, in ``create_app``)."""

    max_body_bytes: int
    """A larger request body is a 413."""
    cold_start_timeout_s: float
    """How long a request waits for a first replica (scale from zero), and for the first routing table."""
    demand_interval_s: float
    """How often, at most, the runtime is asked again for a replica of a deployment."""
    access_log: bool = True
    """Write one access-log line per request (``AccessLog``, to standard error)."""


@dataclass(frozen=True, slots=True)
class Lifespan:
    """What runs beside the gateway: ``background`` starts with it and is cancelled at shutdown, then ``on_close``
    runs in order (the routing source, the JWKS keys, the prediction log)."""

    background: tuple[Lifetime, ...] = ()
    on_close: tuple[Lifetime, ...] = ()


class _Request(NamedTuple):
    """What the gateway read from a request's head (``Gateway._http``): made once, read by ``_route``."""

    path: bytes
    """Raw, without the query string."""
    rid: bytes
    """Its request id: the caller's, or a new one."""
    supplied: bool
    """The caller gave ``rid``."""
    authorization: bytes | None
    content_type: bytes
    forwarded: list[tuple[bytes, bytes]]
    """The headers passed on to the replica (``x-forwarded-for`` is appended once a replica is chosen)."""


def _read_head(path: bytes, headers: list[tuple[bytes, bytes]]) -> tuple[_Request, bool]:
    """The request's head, and whether it carries more than one ``Authorization`` header (refused with 400)."""
    rid = b""
    authorization: bytes | None = None
    repeated = False
    content_type = b""
    forwarded: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        if name in _DROP_REQUEST:
            if name == b"request-id" or (name == b"x-request-id" and not rid):
                rid = value
            elif name == b"authorization":
                repeated = repeated or authorization is not None
                authorization = value
        else:
            if name == b"content-type":
                content_type = value
            forwarded.append((name, value))
    supplied = 0 < len(rid) <= _MAX_REQUEST_ID
    if not supplied:
        rid = request_id()
    forwarded.append((b"request-id", rid))
    return _Request(path, rid, supplied, authorization, content_type, forwarded), repeated


class Gateway:
    """The ASGI app: routes, authenticates and forwards; runs the routing watcher in its lifespan."""

    def __init__(
        self,
        watcher: RoutingWatcher,
        forwarder: Forwarder,
        authenticator: Authenticator | None,
        feedback: FeedbackHandler,
        metrics: GatewayMetrics,
        *,
        options: ProxyOptions,
        recorder: PredictionRecorder | None = None,
        lifespan: Lifespan = Lifespan(),  # frozen: one shared default is safe
    ) -> None:
        """``recorder``: where predictions are logged (``None``: they are not)."""
        self.watcher = watcher
        self.forwarder = forwarder
        self.authenticator = authenticator
        self.feedback = feedback
        self.metrics = metrics
        self.max_body_bytes = options.max_body_bytes
        self.cold_start_timeout_s = options.cold_start_timeout_s
        self.demand_interval_s = options.demand_interval_s
        self.access_log = AccessLog() if options.access_log else None
        self.recorder = recorder
        self.weights = WeightedChoice()
        self._background = lifespan.background
        self._on_close = lifespan.on_close
        self._demanded: dict[str, float] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    # --- ASGI
    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        tasks: list[asyncio.Task[None]] = []
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                tasks = [asyncio.create_task(self.watcher.run())]
                tasks += [asyncio.create_task(start()) for start in self._background]
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
                await self.forwarder.close()
                for close in self._on_close:
                    await close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        path: bytes = scope.get("raw_path") or scope["path"].encode()
        if path in (b"/healthcheck", b"/metrics"):
            await self._own(path, send)
            return
        head, repeated = _read_head(path, scope["headers"])
        rid = head.rid
        exchange = _Exchange()
        self.metrics.in_flight.inc()
        status = 500
        body_in = 0
        try:
            if repeated:
                raise repeated_authorization()
            request = await self._read_body(scope, receive)
            body_in = len(request)
            status, headers, answer = await self._route(scope, head, request, exchange)
        except LegionError as exc:
            status, headers, answer = self._error(exc)
        except Exception:
            log.exception("internal error in request %s", rid.decode("latin-1"))
            status, headers, answer = self._error(LegionError(f"internal error (request id {rid.decode()})"))
        finally:
            self.metrics.in_flight.dec()
        headers.append((b"request-id", rid))
        headers.append((b"content-length", b"%d" % len(answer)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": answer})
        total = time.perf_counter() - started
        self.metrics.observe(exchange.route, exchange.deployment, status, total_s=total,
                             upstream_s=exchange.upstream_s, waited_s=exchange.waited_s)  # fmt: skip
        if self.access_log is not None:
            client = scope.get("client")
            self.access_log.write({
                "requestId": rid.decode("latin-1"), "method": scope["method"], "path": path.decode("latin-1"),
                "status": status, "route": exchange.route, "deployment": exchange.deployment,
                "replica": exchange.replica, "durationMs": round(total * 1000, 3),
                "upstreamMs": round(exchange.upstream_s * 1000, 3), "bytesIn": body_in, "bytesOut": len(answer),
                "subject": exchange.subject, "client": client[0] if client else None,
            })  # fmt: skip

    async def _route(
        self, scope: Scope, head: _Request, body: bytes, exchange: _Exchange
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        table = await self._table()
        target = resolve(table, head.path)
        if target is None:
            raise NotFoundError(f"nothing is served at {head.path.decode('latin-1')}")
        exchange.route = target.route.id if target.route is not None else target.kind
        if target.kind != "feedback" and writes_properties(scope["method"], target.path):
            raise ForbiddenError(
                "model properties are not set through the gateway: a deployment's properties are set through the "
                "management API (legion model property set DEPLOYMENT NAME VALUE), for every replica"
            )
        claims = None
        if self.authenticator is not None and not target.open:
            claims = await self.authenticator.authenticate(
                head.authorization.decode("latin-1") if head.authorization else None
            )
            exchange.subject = claims.subject
        deployment = self._deployment(table, target, claims)
        exchange.deployment = deployment.id
        if target.kind == "feedback":
            return await self._feedback(deployment, claims, head, body)
        if not deployment.endpoints and target.open:
            raise UnavailableError(f"deployment {deployment.id!r} has no ready replica")  # probes wake nothing
        if not deployment.endpoints:
            waited = time.perf_counter()
            deployment = await self._cold_start(deployment.id)
            exchange.waited_s = time.perf_counter() - waited
            self.metrics.cold_start_seconds.labels(deployment.id).observe(exchange.waited_s)
        if claims is not None and not target.open and deployment.identity is not None:
            authorize(claims, deployment.identity)
        elif claims is not None and not target.open:
            raise UnavailableError(f"deployment {deployment.id!r} does not say which model it serves yet")
        if deployment.min_replicas == 0:
            self._demand(deployment.id)  # keep a scaled-from-zero replica while traffic flows
        query: bytes = scope.get("query_string", b"")
        upstream_path = target.path + b"?" + query if query else target.path
        method = scope["method"].encode()
        forwarded = head.forwarded
        client = scope.get("client")
        if client:
            forwarded.append((b"x-forwarded-for", client[0].encode()))
        if target.route is not None and target.route.mirror:
            mirror = table.deployments.get(target.route.mirror)
            self.forwarder.mirror(mirror, method, upstream_path, forwarded, body, name=target.route.mirror)
        response, replica, upstream_s = await self.forwarder.forward(deployment, method, upstream_path, forwarded,
                                                                     body)  # fmt: skip
        exchange.replica = replica
        exchange.upstream_s = upstream_s
        if self.recorder is not None and deployment.prediction_logging and is_prediction(target.path):
            # positional: a keyword call to a NamedTuple's constructor costs twice as much (0.7 against 0.3 us)
            await self.recorder.prediction(ModelCall(
                head.rid, deployment.id, deployment.model_name or "", deployment.model_version or "",
                scope["method"], upstream_path, forwarded, body, head.content_type,
                response.status, upstream_s, response.headers, response.body,
            ))  # fmt: skip
        headers = [(n, v) for n, v in response.headers if n not in _DROP_RESPONSE]
        return response.status, headers, response.body

    def _deployment(self, table: RoutingTable, target: Target, claims: Claims | None) -> Deployment:
        """The deployment ``target`` goes to; checks the token against every model it could reach."""
        if target.route is not None:
            present = frozenset(d for d, _ in target.route.targets if d in table.deployments)
            if claims is not None and not target.open:
                for name in present:
                    identity = table.deployments[name].identity
                    if identity is not None:
                        authorize(claims, identity)
            chosen = self.weights.pick(target.route, present)
            if chosen is None:
                raise UnavailableError(f"route {target.route.id!r} has no deployment")
            return table.deployments[chosen]
        if target.model is not None:
            if claims is not None:
                authorize(claims, target.model)
            serving = table.by_model.get(target.model)
            if not serving:
                name, version = target.model
                raise NotFoundError(f"no deployment serves model {name!r} version {version!r}")
            return table.deployments[serving[0]]
        assert target.deployment is not None
        deployment = table.deployments.get(target.deployment)
        if deployment is None:
            raise NotFoundError(f"no deployment {target.deployment!r}")
        return deployment

    async def _table(self) -> RoutingTable:
        """The current table; before the first one arrives, requests wait for it (up to the cold-start timeout)."""
        deadline = time.monotonic() + self.cold_start_timeout_s
        while not self.watcher.loaded:
            left = deadline - time.monotonic()
            if left <= 0:
                raise UnavailableError("the gateway has no routing table yet")
            await self.watcher.wait_for_change(left)
        return self.watcher.table

    async def _cold_start(self, deployment_id: str) -> Deployment:
        """Hold the request until ``deployment_id`` has a ready replica, asking the runtime for one meanwhile."""
        deadline = time.monotonic() + self.cold_start_timeout_s
        while True:
            deployment = self.watcher.table.deployments.get(deployment_id)
            if deployment is None:
                raise NotFoundError(f"no deployment {deployment_id!r}")
            if deployment.endpoints:
                return deployment
            if deployment.state == "Failed":
                raise UnavailableError(f"deployment {deployment_id!r} has failed")
            self._demand(deployment_id)
            left = deadline - time.monotonic()
            if left <= 0:
                raise UnavailableError(
                    f"no replica of deployment {deployment_id!r} was ready within {self.cold_start_timeout_s:g} s"
                )
            await self.watcher.wait_for_change(min(left, self.demand_interval_s))

    def _demand(self, deployment_id: str) -> None:
        """Ask the runtime for a replica, at most every ``demand_interval_s`` per deployment."""
        now = time.monotonic()
        if now - self._demanded.get(deployment_id, -self.demand_interval_s) < self.demand_interval_s:
            return
        self._demanded[deployment_id] = now
        task = asyncio.create_task(self.watcher.source.demand(deployment_id))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _feedback(
        self, deployment: Deployment, claims: Claims | None, head: _Request, body: bytes
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        if claims is not None:
            if deployment.identity is None:
                raise UnavailableError(f"deployment {deployment.id!r} does not say which model it serves yet")
            authorize(claims, deployment.identity)
        request = FeedbackRequest(
            request_id=head.rid.decode("latin-1") if head.supplied else None,
            deployment=deployment.id,
            model=deployment.identity,
            body=body,
            content_type=head.content_type.split(b";", 1)[0].strip().lower().decode("latin-1"),
        )
        answer = await self.feedback.handle(request)
        return answer.status, [_JSON], orjson.dumps(answer.body)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message: Message = await receive()
            if message["type"] != "http.request":
                raise BadRequestError("the client went away before sending its whole request")
            chunk: bytes = message.get("body", b"")
            if chunk:
                size += len(chunk)
                if size > self.max_body_bytes:
                    raise PayloadTooLargeError(f"request body is over the limit of {self.max_body_bytes} bytes")
                chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks[0] if len(chunks) == 1 else b"".join(chunks)

    def _error(self, exc: LegionError) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
        headers = [_JSON]
        if isinstance(exc, UnauthorizedError):
            headers.append(_WWW_AUTHENTICATE)
        return exc.status, headers, orjson.dumps(exc.to_dict())

    async def _own(self, path: bytes, send: Send) -> None:
        if path == b"/metrics":
            body = self.metrics.exposition()
            status, headers = 200, [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")]
        else:
            loaded = self.watcher.loaded
            body = orjson.dumps({"status": "ok" if loaded else "loading", "routing": self.watcher.table.etag})
            status, headers = (200 if loaded else 503), [_JSON]
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def drain(self) -> None:
        """Wait for background demands (tests, shutdown)."""
        with contextlib.suppress(Exception):
            await asyncio.gather(*self._tasks, return_exceptions=True)

"""Shared HTTP plumbing of the model server: reading bodies within limits, JSON out, request ids, errors.

``ModelHeaders`` is a small pure-ASGI middleware (cheaper than Starlette's ``BaseHTTPMiddleware`` on the hot
path): it takes ``Request-ID``/``X-Request-ID`` or makes one, adds ``Request-ID``, ``Model-Name``,
``Model-Version`` and ``Model-Endpoint`` to every answer, and counts model API requests by status code.
Handlers say which endpoint a request is for with ``mark_endpoint``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from legion.core.errors import BadRequestError, InvalidInputError, LegionError, PayloadTooLargeError
from legion.core.tokens import repeated_authorization
from legion.serving.dataplane import DataPlane

JSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS
# Requests to these paths are model API calls: counted in flight (health probes and scrapes are not).
MODEL_PATHS = ("/api/model/", "/v2/models/", "/invocations")
_JSON_TYPES = ("application/json", "text/json")


class UnsupportedMediaTypeError(InvalidInputError):
    status = 415
    title = "Unsupported media type"


def json_response(body: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(body, option=JSON_OPTIONS), status, media_type="application/json")


def error_response(exc: LegionError) -> Response:
    return json_response(exc.to_dict(), exc.status)


def mark_endpoint(request: Request, endpoint: str) -> None:
    """Record which endpoint the request is for: it is counted under it and named in ``Model-Endpoint``."""
    request.scope["legion.endpoint"] = endpoint


def request_id(request: Request) -> str:
    rid: bytes = request.scope["legion.request_id"]
    return rid.decode("latin-1")


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int) -> bytes:
    """The whole body, refusing one over ``limit`` bytes before reading it when its length is declared."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over the limit of {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLargeError(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    request._body = body  # Starlette's own cache: lets request.form() parse what was already read
    return body


async def read_json(request: Request, limit: int) -> Any:
    """The body parsed as JSON; a wrong content type, an empty body or bad JSON is a 4xx naming it."""
    kind = media_type(request)
    if kind and kind not in _JSON_TYPES:
        raise UnsupportedMediaTypeError(f"content type {kind!r} is not supported here; send application/json")
    body = await read_body(request, limit)
    return parse_json(body)


def parse_json(body: bytes) -> Any:
    if not body.strip():
        raise BadRequestError("the request body is empty; send a JSON document")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"the request body is not valid JSON: {exc}") from None


class ModelHeaders:
    """Request ids, model headers and request counting around the whole app."""

    def __init__(self, app: ASGIApp, plane: DataPlane) -> None:
        self.app = app
        self.plane = plane
        self._counters: dict[tuple[str, int], Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        rid = b""
        authorizations = 0
        for key, value in scope["headers"]:
            if key == b"request-id" or (key == b"x-request-id" and not rid):
                rid = value
            elif key == b"authorization":
                authorizations += 1
        scope["legion.request_id"] = rid or uuid.uuid4().hex.encode()
        started = time.perf_counter()
        status = 500
        model = self.plane.model
        counted = model is not None and scope["path"].startswith(MODEL_PATHS)
        in_flight = self.plane.metrics.in_flight.labels(model.name, model.version) if counted and model else None
        if in_flight is not None:
            in_flight.inc()

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), *self._headers(scope)]
            await send(message)

        try:
            if authorizations > 1:  # a proxy in front may check one and the model read the other
                await error_response(repeated_authorization())(scope, receive, send_with_headers)
            else:
                await self.app(scope, receive, send_with_headers)
        finally:
            if in_flight is not None:
                in_flight.dec()
            endpoint = scope.get("legion.endpoint")
            if endpoint is not None and self.plane.model is not None:
                self._count(endpoint, status, time.perf_counter() - started)

    def _headers(self, scope: Scope) -> list[tuple[bytes, bytes]]:
        model = self.plane.model
        headers = [(b"request-id", scope["legion.request_id"])]
        if model is not None:
            endpoint = scope.get("legion.endpoint") or "default"
            headers += [
                (b"model-name", model.name.encode()),
                (b"model-version", model.version.encode()),
                (b"model-endpoint", endpoint.encode()),
            ]
        return headers

    def _count(self, endpoint: str, status: int, seconds: float) -> None:
        key = (endpoint, status)
        children = self._counters.get(key)
        if children is None:
            model = self.plane.model
            assert model is not None
            labels = (model.name, model.version, endpoint)
            children = (
                self.plane.metrics.requests.labels(*labels, str(status)),
                self.plane.metrics.request_seconds.labels(*labels),
            )
            self._counters[key] = children
        children[0].inc()
        children[1].observe(seconds)

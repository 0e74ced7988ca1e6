"""``create_app(settings)``: the model server's composition root.

Wires the data plane, the protocol adapters, metrics and error rendering into one Starlette app. The model is
loaded in the background once the app starts, so the liveness probe answers at once and readiness turns true
when loading ends; if loading fails the server stops with the reason (``on_load_failure``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from legion.core.errors import LegionError, NotFoundError
from legion.serving.dataplane import DataPlane
from legion.serving.http import ModelHeaders, error_response, json_response
from legion.serving.metrics import ServerMetrics
from legion.serving.openapi import openapi_document
from legion.serving.protocols.legion import LegionAPI
from legion.serving.protocols.mlflow import MLflowAPI
from legion.serving.protocols.v2 import V2API
from legion.serving.settings import ServerSettings

log = logging.getLogger(__name__)


def create_app(
    settings: ServerSettings,
    *,
    metrics: ServerMetrics | None = None,
    on_load_failure: Callable[[LegionError], None] | None = None,
    preload: bool = False,
) -> ModelHeaders:
    """The app; ``preload`` loads the model now (raising ``LegionError``) instead of in the background."""
    plane = DataPlane(settings, metrics or ServerMetrics())
    if preload:
        plane.load()

    async def healthcheck(request: Request) -> Response:
        if plane.ready:
            return json_response({"status": "ok"})
        return json_response({"status": "failed" if plane.failure else "loading", "error": plane.failure}, 503)

    async def metrics_page(request: Request) -> Response:
        return Response(plane.metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def openapi(request: Request) -> Response:
        return json_response(openapi_document(plane.require_model()))

    async def legion_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, LegionError)
        if exc.status >= 500:
            log.warning("request %s failed: %s", request.scope.get("legion.request_id", b"").decode(), exc.detail)
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        if exc.status_code == 404:
            return error_response(NotFoundError(f"no route {request.method} {request.url.path}"))
        return json_response({"error": str(exc.detail)}, exc.status_code)

    async def unexpected(request: Request, exc: Exception) -> Response:
        rid = request.scope.get("legion.request_id", b"").decode()
        log.exception("internal error in request %s", rid)
        return json_response({"error": f"internal server error (request id {rid})"}, 500)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = None if plane.ready else asyncio.create_task(_load(plane, on_load_failure))
        try:
            yield
        finally:
            if task is not None:
                task.cancel()
            plane.unload()

    routes = [
        Route("/healthcheck", healthcheck, methods=["GET"]),
        Route("/metrics", metrics_page, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        *LegionAPI(plane).routes(),
        *V2API(plane).routes(),
        *MLflowAPI(plane).routes(),
    ]
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={LegionError: legion_error, HTTPException: http_error, Exception: unexpected},
    )
    app.state.plane = plane
    return ModelHeaders(app, plane)


async def _load(plane: DataPlane, on_failure: Callable[[LegionError], None] | None) -> None:
    try:
        await asyncio.to_thread(plane.load)
    except LegionError as exc:
        log.error("cannot serve the model: %s", exc.detail)
        if on_failure is not None:
            on_failure(exc)

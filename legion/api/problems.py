"""Errors of the management API as ``application/problem+json`` (RFC 9457), rendered in this one place.

``{"type": "about:blank", "title": ..., "status": ..., "detail": ..., "errors": {field: reason}}``; the request id
is echoed as ``instance`` so a user can quote it. Validation errors of FastAPI's own (a body that is not JSON, a
wrong query parameter) are turned into the same shape, naming every bad field.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.routing import compile_path

from legion.core.errors import InvalidInputError, LegionError

log = logging.getLogger(__name__)
PROBLEM = "application/problem+json"


def problem(
    status: int,
    title: str,
    detail: str,
    fields: dict[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    body: dict[str, object] = {"type": "about:blank", "title": title, "status": status, "detail": detail}
    if fields:
        body["errors"] = fields
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def _allowed(request: Request, fallback: str) -> str:
    """Every method the document declares for the request's path (the router knows only the route it tried).

    Where templates overlap (``/api/v1/model/token/{token_id}`` and ``/api/v1/model/{name}/{version}``), the path
    is the most specific one's: the template with the most literal segments names the resource."""
    path = request.scope["path"]
    matching = [
        (sum("{" not in part for part in template.split("/")), operations)
        for template, operations in request.app.openapi().get("paths", {}).items()
        if compile_path(template)[0].match(path)
    ]
    if not matching:
        return fallback
    most = max(literal for literal, _ in matching)
    methods = {method.upper() for literal, operations in matching if literal == most for method in operations}
    return ", ".join(sorted(methods))


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into a problem document."""

    async def legion_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, LegionError)
        if exc.status >= 500:
            log.error("%s %s failed: %s", request.method, request.url.path, exc.detail)
        return problem(exc.status, exc.title, exc.detail, exc.fields)

    async def validation_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = {".".join(str(p) for p in e["loc"] if p != "body"): e["msg"] for e in exc.errors()}
        error = InvalidInputError.for_fields(fields, prefix="invalid request")
        return problem(error.status, error.title, error.detail, error.fields)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # RFC 9110: name every method the path takes, not those of one route
            headers["Allow"] = _allowed(request, headers.get("Allow", ""))
        return problem(exc.status_code, "Error", str(exc.detail), headers=headers)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("%s %s: internal error", request.method, request.url.path)
        return problem(500, "Internal error", "internal server error; the server log has the details")

    app.add_exception_handler(LegionError, legion_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(Exception, unexpected)

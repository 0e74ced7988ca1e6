"""MLflow's scoring protocol, so ``legion serve`` can stand in for ``mlflow models serve``.

``POST /invocations`` takes JSON with exactly one of ``dataframe_split``, ``dataframe_records``, ``instances``
or ``inputs``, or ``text/csv``; it answers ``{"predictions": ...}`` (a list of values for a one-column output,
else a list of records). Errors use MLflow's body ``{"error_code": ..., "message": ...}``. ``/ping``,
``/health`` and ``/version`` answer as MLflow's server does.
"""

from __future__ import annotations

import csv
import io
from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from legion import __version__
from legion.core.errors import BadRequestError, LegionError
from legion.model.endpoints import Raw, TypedEndpoint, UntypedEndpoint
from legion.model.table import Table
from legion.serving import codecs
from legion.serving.dataplane import DataPlane
from legion.serving.http import (
    UnsupportedMediaTypeError,
    json_response,
    mark_endpoint,
    media_type,
    parse_json,
    read_body,
)

_FORMATS = ("dataframe_split", "dataframe_records", "instances", "inputs")
_ERROR_CODES = {400: "BAD_REQUEST", 404: "RESOURCE_DOES_NOT_EXIST", 413: "BAD_REQUEST", 415: "BAD_REQUEST",
                422: "INVALID_PARAMETER_VALUE", 503: "TEMPORARILY_UNAVAILABLE"}  # fmt: skip


def _predictions(result: Table | Raw, exact: bool) -> Any:
    """``exact`` (an MLflow model): as MLflow renders what the model returned: an array as nested lists, a
    DataFrame as records. A Legion model's one-column answer is a list of values, a wider one records."""
    if isinstance(result, Raw):
        return result.value
    if exact:
        if result.layout == "vector":
            return result.column_lists()[0]
        return result.rows() if result.layout == "matrix" else result.records()
    if len(result.columns) == 1:
        return result.column_lists()[0]
    return result.records()


class MLflowAPI:
    """Handlers of MLflow's scoring server protocol."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.limit = plane.settings.max_body_bytes

    def routes(self) -> list[Route]:
        return [
            Route("/invocations", self.invocations, methods=["POST"]),
            Route("/ping", self.ping, methods=["GET"]),
            Route("/health", self.ping, methods=["GET"]),
            Route("/version", self.version, methods=["GET"]),
        ]

    async def ping(self, request: Request) -> Response:
        self.plane.require_model()
        return PlainTextResponse("\n")

    async def version(self, request: Request) -> Response:
        return PlainTextResponse(__version__)

    async def invocations(self, request: Request) -> Response:
        try:
            endpoint = self.plane.endpoint(None)
            mark_endpoint(request, endpoint.name)
            table = await self._table(request, endpoint)
            if isinstance(endpoint, UntypedEndpoint):
                return json_response({"predictions": [self.plane.call(endpoint, r) for r in table.records()]})
            exact = self.plane.require_model().manifest.flavor == "mlflow"
            return json_response({"predictions": _predictions(await self.plane.predict(endpoint, table), exact)})
        except LegionError as exc:
            code = _ERROR_CODES.get(exc.status, "INTERNAL_ERROR")
            return json_response({"error_code": code, "message": exc.detail}, exc.status)

    async def _table(self, request: Request, endpoint: TypedEndpoint | UntypedEndpoint) -> Table:
        signed = endpoint if endpoint.columns else codecs.ANY_COLUMNS
        kind = media_type(request)
        body = await read_body(request, self.limit)
        if kind == "text/csv":
            return _from_csv(signed, body)
        if kind not in ("application/json", ""):
            raise UnsupportedMediaTypeError(
                f"content type {kind!r} is not supported; send application/json or text/csv"
            )
        data = parse_json(body)
        if not isinstance(data, dict):
            raise BadRequestError(f"the JSON body must be an object with one of: {', '.join(_FORMATS)}")
        given = [key for key in _FORMATS if key in data]
        if len(given) != 1:
            raise BadRequestError(f"the JSON body must have exactly one of: {', '.join(_FORMATS)}")
        value = data[given[0]]
        if given[0] == "dataframe_split":
            if not isinstance(value, dict):
                raise BadRequestError('"dataframe_split" must be an object {"columns": [...], "data": [[...]]}')
            return codecs.from_rows(signed, value.get("columns"), value.get("data"))
        if isinstance(value, dict):
            return codecs.from_columns(signed, value)
        if isinstance(value, list) and value and all(isinstance(v, list) for v in value):
            if not signed.columns:
                return codecs.from_matrix(value)
            return codecs.from_rows(signed, [c.name for c in signed.columns], value)
        return codecs.from_records(signed, value)


def _from_csv(signed: codecs.Signed, body: bytes) -> Table:
    reader = csv.reader(io.StringIO(body.decode("utf-8", "replace")))
    rows = [row for row in reader if row]
    if len(rows) < 2:
        raise BadRequestError("CSV input needs a header line and at least one row")
    return codecs.from_rows(signed, rows[0], rows[1:])

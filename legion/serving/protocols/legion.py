"""Legion's own model APIs, both generations.

- era-b: ``GET /api/model/info`` (the model's OpenAPI document) and ``POST /api/model/invoke[/<endpoint>]``
  with ``{"columns": [...], "data": [[...]]}`` -> ``{"prediction": [[...]], "columns": [...]}``.
- era-a: ``/api/model/<name>/<version>/info``, ``GET|POST .../invoke[/<endpoint>]`` taking a query string, form
  fields, ``key[]`` lists, multipart files (for ``image`` columns) or a JSON object, answering the endpoint's
  JSON (one object per row); ``POST .../batch[/<endpoint>]`` with one query string per line or a JSON list,
  answering a JSON list.
- ``GET|PUT /api/model/properties``: read and tune the model's runtime properties. A server started with a
  ``properties_token`` (every replica of the platform's local runtime) takes a ``PUT`` only with that token: a
  deployment's properties are the management API's, which delivers them to every replica.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qsl

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from legion.core.errors import BadRequestError, ForbiddenError, NotFoundError
from legion.model import properties
from legion.model.endpoints import Endpoint, Raw, UntypedEndpoint
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
    read_json,
)
from legion.serving.openapi import describe_endpoint, openapi_document

_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_ERA_B_SHAPE = '{"columns": [...], "data": [[...]]} is the era-b shape, for POST /api/model/invoke'


def _one_or_many(result: Table | Raw) -> Any:
    if isinstance(result, Raw):
        return result.value
    records = result.records()
    return records[0] if len(records) == 1 else records


class LegionAPI:
    """Handlers of Legion's era-a and era-b model APIs over one data plane."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.limit = plane.settings.max_body_bytes

    def routes(self) -> list[Route]:
        a = "/api/model/{name}/{version}"
        return [
            Route("/api/model/info", self.info_b, methods=["GET"]),
            Route("/api/model/invoke", self.invoke_b, methods=["POST"]),
            Route("/api/model/invoke/{endpoint}", self.invoke_b, methods=["POST"]),
            Route("/api/model/properties", self.properties, methods=["GET", "PUT"]),
            Route(f"{a}/info", self.info_a, methods=["GET"]),
            Route(f"{a}/invoke", self.invoke_a, methods=["GET", "POST"]),
            Route(f"{a}/invoke/{{endpoint}}", self.invoke_a, methods=["GET", "POST"]),
            Route(f"{a}/batch", self.batch_a, methods=["POST"]),
            Route(f"{a}/batch/{{endpoint}}", self.batch_a, methods=["POST"]),
        ]

    def _endpoint(self, request: Request) -> Endpoint:
        endpoint = self.plane.endpoint(request.path_params.get("endpoint"))
        mark_endpoint(request, endpoint.name)
        return endpoint

    def _check_address(self, request: Request) -> None:
        model = self.plane.require_model()
        name, version = request.path_params["name"], request.path_params["version"]
        if (name, version) != (model.name, model.version):
            raise NotFoundError(
                f"model {name}:{version} is not served here; this server serves {model.name}:{model.version}"
            )

    # --- era-b ----------------------------------------------------------------------------------------
    async def info_b(self, request: Request) -> Response:
        return json_response(openapi_document(self.plane.require_model()))

    async def invoke_b(self, request: Request) -> Response:
        endpoint = self._endpoint(request)
        body = await read_json(request, self.limit)
        if not isinstance(body, dict):
            raise BadRequestError('expected a JSON object {"columns": [...], "data": [[...], ...]}')
        if isinstance(endpoint, UntypedEndpoint):
            table_rows = codecs.from_rows(codecs.ANY_COLUMNS, body.get("columns"), body.get("data")).records()
            return json_response({"prediction": [self.plane.call(endpoint, row) for row in table_rows]})
        result = await self.plane.predict(endpoint, codecs.from_rows(endpoint, body.get("columns"), body.get("data")))
        if isinstance(result, Raw):
            return json_response({"prediction": result.value})
        return json_response({"prediction": result.rows(), "columns": list(result.columns)})

    # --- era-a ----------------------------------------------------------------------------------------
    async def info_a(self, request: Request) -> Response:
        self._check_address(request)
        model = self.plane.require_model()
        return json_response(
            {
                "model_id": model.name,
                "model_version": model.version,
                "endpoints": {name: describe_endpoint(e) for name, e in model.endpoints.items()},
            }
        )

    async def invoke_a(self, request: Request) -> Response:
        self._check_address(request)
        endpoint = self._endpoint(request)
        params = await self._parameters(request)
        if isinstance(endpoint, UntypedEndpoint):
            return json_response(self.plane.call(endpoint, params))
        if not params:
            raise BadRequestError("no input given: send the columns as query parameters, form fields or JSON")
        if _era_b_shaped(params, endpoint):
            raise BadRequestError(
                f"this era-a path takes the columns by name, one value each (or a list for several rows): a query "
                f"string, form fields or a JSON object {_columns_object(endpoint)}; {_ERA_B_SHAPE}"
            )
        result = await self.plane.predict(endpoint, codecs.from_columns(endpoint, params))
        return json_response(_one_or_many(result))

    async def batch_a(self, request: Request) -> Response:
        self._check_address(request)
        endpoint = self._endpoint(request)
        body = await read_body(request, self.limit)
        if media_type(request) in ("application/json", "text/json"):
            records = parse_json(body)
            if not isinstance(records, list):
                era_b = isinstance(records, dict) and _era_b_shaped(records, endpoint)
                raise BadRequestError(
                    f"a JSON batch must be a list of objects, one per row: [{_columns_object(endpoint)}, ...]"
                    + (f"; {_ERA_B_SHAPE}" if era_b else "")
                )
        else:
            text = body.decode("utf-8", "replace")
            records = [
                dict(parse_qsl(line.strip(), keep_blank_values=True)) for line in text.splitlines() if line.strip()
            ]
        if not records:
            raise BadRequestError("the batch is empty: send one query string per line, or a JSON list")
        if isinstance(endpoint, UntypedEndpoint):
            if not all(isinstance(r, dict) for r in records):
                raise BadRequestError("every batch item must be an object")
            return json_response([self.plane.call(endpoint, r) for r in records])
        table = codecs.from_records(endpoint, records)
        result = await self.plane.predict(endpoint, table)
        if isinstance(result, Table):
            return json_response(result.records())
        # One answer for the whole batch (an era-a ``apply_func`` that returns one dict whatever it is given):
        # Legion called such an endpoint once per line, so do that and answer one item per line.
        answers = [_one_or_many(await self.plane.predict(endpoint, table.slice(i, i + 1))) for i in range(len(table))]
        return json_response(answers)

    async def _parameters(self, request: Request) -> dict[str, Any]:
        params: dict[str, Any] = _multi(request.query_params.multi_items())
        if request.method != "POST":
            return params
        kind = media_type(request)
        if kind in _FORMS:
            await read_body(request, self.limit)  # enforce the size limit before parsing
            async with request.form(max_part_size=self.limit) as form:
                items: list[tuple[str, Any]] = []
                for key, value in form.multi_items():
                    items.append((key, await value.read() if isinstance(value, UploadFile) else value))
            params.update(_multi(items))
        elif kind in ("application/json", "text/json", ""):
            body = await read_body(request, self.limit)
            if body.strip():
                data = parse_json(body)
                if not isinstance(data, dict):
                    raise BadRequestError("the JSON body must be an object of parameters")
                params.update(data)
        else:
            raise UnsupportedMediaTypeError(
                f"content type {kind!r} is not supported here; send a query string, a form or application/json"
            )
        return params

    # --- properties -----------------------------------------------------------------------------------
    async def properties(self, request: Request) -> Response:
        self.plane.require_model()
        if request.method == "PUT":
            self._check_properties_token(request)
            changes = await read_json(request, self.limit)
            if not isinstance(changes, dict):
                raise BadRequestError('send a JSON object of properties, e.g. {"threshold": 0.7}')
            return json_response(properties.update_properties(changes))
        return json_response(properties.all_properties())

    def _check_properties_token(self, request: Request) -> None:
        token = self.plane.settings.properties_token
        if token is None:
            return
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        expected = token.get_secret_value().encode()
        if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), expected):
            raise ForbiddenError(
                "this model's properties are set through the management API: "
                "legion model property set DEPLOYMENT NAME VALUE"
            )


def _era_b_shaped(params: dict[str, Any], endpoint: Endpoint) -> bool:
    """Whether era-a parameters are an era-b body (``columns`` and ``data``) rather than columns of that name."""
    names = {column.name for column in endpoint.columns}
    return set(params) == {"columns", "data"} and not names & {"columns", "data"}


def _columns_object(endpoint: Endpoint) -> str:
    """``{"age": ..., "workclass": ...}``: the object of columns an era-a path takes for ``endpoint``."""
    names = [column.name for column in endpoint.columns]
    return "{" + ", ".join(f'"{name}": ...' for name in names) + "}" if names else "{...}"


def _multi(items: Any) -> dict[str, Any]:
    """Parameters, with ``key[]`` (or a repeated key) gathered into a list under ``key``."""
    params: dict[str, Any] = {}
    for key, value in items:
        if key.endswith("[]"):
            params.setdefault(key[:-2], []).append(value)
        elif key in params:
            previous = params[key]
            params[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
        else:
            params[key] = value
    return params

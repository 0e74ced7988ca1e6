"""Open Inference Protocol V2 over REST (KServe, Triton, MLServer clients).

Each input tensor is one column of the endpoint's signature (MLServer's pandas-codec convention); a single
two-dimensional input whose name is not a column is taken as rows in signature order. The endpoint is the
default one unless the request's ``parameters`` name another (``{"endpoint": "predict_proba"}``). Errors are
``{"error": "..."}`` as the protocol says.
"""

from __future__ import annotations

import math
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from legion import __version__
from legion.core.dtypes import V2_DATATYPES
from legion.core.errors import BadRequestError, NotFoundError
from legion.model.endpoints import Raw, TypedEndpoint, UntypedEndpoint
from legion.model.loader import LoadedModel
from legion.model.table import Table
from legion.serving import codecs
from legion.serving.dataplane import DataPlane
from legion.serving.http import json_response, mark_endpoint, read_json, request_id

_KIND_TO_V2 = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    if data and isinstance(data[0], list):
        return [value for part in data for value in _flatten(part)]
    return data


def _output(name: str, values: list[Any], dtype_kind: str) -> dict[str, Any]:
    return {
        "name": name,
        "datatype": _KIND_TO_V2.get(dtype_kind, "BYTES"),
        "shape": [len(values)],
        "data": values,
    }


def outputs_of(result: Table | Raw) -> list[dict[str, Any]]:
    if isinstance(result, Raw):
        return [
            {
                "name": "output",
                "datatype": "BYTES",
                "shape": [1],
                "data": [orjson.dumps(result.value).decode()],
            }
        ]
    return [
        _output(name, values, array.dtype.kind)
        for name, values, array in zip(result.columns, result.column_lists(), result.arrays, strict=True)
    ]


class V2API:
    """Handlers of the Open Inference Protocol V2 REST API."""

    def __init__(self, plane: DataPlane) -> None:
        self.plane = plane
        self.limit = plane.settings.max_body_bytes

    def routes(self) -> list[Route]:
        m = "/v2/models/{name}"
        return [
            Route("/v2", self.server_metadata, methods=["GET"]),
            Route("/v2/health/live", self.live, methods=["GET"]),
            Route("/v2/health/ready", self.ready, methods=["GET"]),
            Route(m, self.metadata, methods=["GET"]),
            Route(f"{m}/versions/{{version}}", self.metadata, methods=["GET"]),
            Route(f"{m}/ready", self.model_ready, methods=["GET"]),
            Route(f"{m}/versions/{{version}}/ready", self.model_ready, methods=["GET"]),
            Route(f"{m}/infer", self.infer, methods=["POST"]),
            Route(f"{m}/versions/{{version}}/infer", self.infer, methods=["POST"]),
        ]

    def _model(self, request: Request) -> LoadedModel:
        model = self.plane.require_model()
        name = request.path_params["name"]
        version = request.path_params.get("version")
        if name != model.name or (version is not None and version != model.version):
            asked = f"{name}:{version}" if version else name
            raise NotFoundError(f"model {asked} is not served here; this server serves {model.name}:{model.version}")
        return model

    async def server_metadata(self, request: Request) -> Response:
        return json_response({"name": "legion", "version": __version__, "extensions": []})

    async def live(self, request: Request) -> Response:
        return json_response({"live": True})

    async def ready(self, request: Request) -> Response:
        return json_response({"ready": self.plane.ready}, 200 if self.plane.ready else 503)

    async def model_ready(self, request: Request) -> Response:
        model = self._model(request)
        return json_response({"name": model.name, "ready": True})

    async def metadata(self, request: Request) -> Response:
        model = self._model(request)
        endpoint = model.endpoint(None)
        inputs = [{"name": c.name, "datatype": V2_DATATYPES[c.type], "shape": [-1]} for c in endpoint.columns]
        outputs = [
            {"name": c.name, "datatype": V2_DATATYPES[c.type], "shape": [-1]} for c in endpoint.spec.output or ()
        ]
        return json_response(
            {
                "name": model.name,
                "versions": [model.version],
                "platform": f"legion-{model.manifest.flavor}",
                "inputs": inputs,
                "outputs": outputs,
                "parameters": {"endpoints": sorted(model.endpoints)},
            }
        )

    async def infer(self, request: Request) -> Response:
        model = self._model(request)
        body = await read_json(request, self.limit)
        if not isinstance(body, dict):
            raise BadRequestError('expected a JSON object with "inputs"')
        parameters = body.get("parameters") or {}
        endpoint = model.endpoint(parameters.get("endpoint") if isinstance(parameters, dict) else None)
        mark_endpoint(request, endpoint.name)
        table = self._table(endpoint, body.get("inputs"))
        if isinstance(endpoint, UntypedEndpoint):
            results = [self.plane.call(endpoint, record) for record in table.records()]
            result: Table | Raw = Raw(results)
        else:
            result = await self.plane.predict(endpoint, table)
        return json_response(
            {
                "model_name": model.name,
                "model_version": model.version,
                "id": body.get("id") or request_id(request),
                "parameters": {"endpoint": endpoint.name},
                "outputs": outputs_of(result),
            }
        )

    def _table(self, endpoint: TypedEndpoint | UntypedEndpoint, inputs: Any) -> Table:
        if not isinstance(inputs, list) or not inputs or not all(isinstance(i, dict) for i in inputs):
            raise BadRequestError('"inputs" must be a non-empty list of tensors {name, shape, datatype, data}')
        columns: dict[str, list[Any]] = {}
        for index, tensor in enumerate(inputs):
            name = tensor.get("name")
            if not isinstance(name, str) or "data" not in tensor:
                raise BadRequestError(f"input {index} needs a name and data")
            shape = tensor.get("shape")
            values = _flatten(tensor["data"])
            if isinstance(shape, list) and all(isinstance(s, int) for s in shape) and shape:
                if math.prod(shape) != len(values):
                    raise BadRequestError(f"input {name!r}: shape {shape} does not hold {len(values)} values")
                names = [c.name for c in endpoint.columns]
                if len(inputs) == 1 and len(shape) == 2 and names and name not in names:
                    return _matrix(endpoint, name, names, shape[1], values)
            columns[name] = values
        return codecs.from_columns(endpoint if endpoint.columns else codecs.ANY_COLUMNS, columns)


def _matrix(endpoint: codecs.Signed, name: str, names: list[str], width: int, values: list[Any]) -> Table:
    """A single ``[rows, columns]`` tensor, its columns in signature order."""
    if width != len(names):
        raise BadRequestError(f"input {name!r} has {width} columns; the model takes {len(names)}: {', '.join(names)}")
    rows = [values[i : i + width] for i in range(0, len(values), width)]
    return codecs.from_rows(endpoint, names, rows)

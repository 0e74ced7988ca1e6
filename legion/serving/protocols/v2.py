"""Open Inference Protocol V2 over REST (KServe, Triton, MLServer clients).

Each input tensor is one column of the endpoint's signature (MLServer's pandas-codec convention); a single
two-dimensional input whose name is not a column is taken as rows in signature order. The endpoint is the
default one unless the request's ``parameters`` name another (``{"endpoint": "predict_proba"}``). Errors are
``{"error": "..."}`` as the protocol says. Tensors (datatype checks, the binary tensor data extension that Triton's
and KServe's clients use by default) are read and written by ``protocols.tensors``.
"""

from __future__ import annotations

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
from legion.serving.http import (
    JSON_OPTIONS,
    UnsupportedMediaTypeError,
    json_response,
    mark_endpoint,
    media_type,
    parse_json,
    read_body,
    request_id,
)
from legion.serving.protocols import tensors

_KIND_TO_V2 = {"b": "BOOL", "i": "INT64", "u": "UINT64", "f": "FP64"}
_BODY_TYPES = ("application/json", "text/json", "application/octet-stream", "")


def outputs_of(result: Table | Raw) -> list[tensors.Tensor]:
    if isinstance(result, Raw):
        return [tensors.Tensor("output", "BYTES", (1,), [orjson.dumps(result.value).decode()])]
    return [
        tensors.Tensor(name, _KIND_TO_V2.get(array.dtype.kind, "BYTES"), (len(values),), values)
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
        kind = media_type(request)
        if kind not in _BODY_TYPES:
            raise UnsupportedMediaTypeError(
                f"content type {kind!r} is not supported here; send application/json, or application/octet-stream "
                "with Inference-Header-Content-Length for binary tensor data"
            )
        header, binary = tensors.split_body(
            await read_body(request, self.limit), request.headers.get("inference-header-content-length")
        )
        body = parse_json(header)
        if not isinstance(body, dict):
            raise BadRequestError('expected a JSON object with "inputs"')
        parameters = body.get("parameters") or {}
        endpoint = model.endpoint(parameters.get("endpoint") if isinstance(parameters, dict) else None)
        mark_endpoint(request, endpoint.name)
        wanted, binary_names, all_binary = tensors.binary_outputs(body)
        table = self._table(endpoint, tensors.decode_inputs(body.get("inputs"), binary))
        if isinstance(endpoint, UntypedEndpoint):
            results = [self.plane.call(endpoint, record) for record in table.records()]
            result: Table | Raw = Raw(results)
        else:
            result = await self.plane.predict(endpoint, table)
        outputs = outputs_of(result)
        if wanted is not None:
            unknown = wanted - {o.name for o in outputs}
            if unknown:
                have = ", ".join(o.name for o in outputs)
                raise BadRequestError(
                    f"unknown outputs requested: {', '.join(sorted(unknown))}; the model gives {have}"
                )
            outputs = [o for o in outputs if o.name in wanted]
        described, blob = tensors.encode_outputs(outputs, binary_names, all_binary)
        answer = {
            "model_name": model.name,
            "model_version": model.version,
            "id": body.get("id") or request_id(request),
            "parameters": {"endpoint": endpoint.name},
            "outputs": described,
        }
        if not blob and not any("parameters" in o for o in described):
            return json_response(answer)
        head = orjson.dumps(answer, option=JSON_OPTIONS)
        return Response(
            head + blob,
            media_type="application/octet-stream",
            headers={"inference-header-content-length": str(len(head))},
        )

    def _table(self, endpoint: TypedEndpoint | UntypedEndpoint, inputs: list[tensors.Tensor]) -> Table:
        names = [c.name for c in endpoint.columns]
        types = {c.name: c.type for c in endpoint.columns}
        if len(inputs) == 1 and len(inputs[0].shape) == 2 and names and inputs[0].name not in names:
            only = inputs[0]
            return _matrix(endpoint, only.name, names, only.shape[1], _texts(only, "string"))
        columns = {t.name: _texts(t, types.get(t.name, "string")) for t in inputs}
        return codecs.from_columns(endpoint if endpoint.columns else codecs.ANY_COLUMNS, columns)


def _texts(tensor: tensors.Tensor, column_type: str) -> list[Any]:
    """BYTES sent as binary data arrive as bytes: text for every column but an image one."""
    if tensor.datatype != "BYTES" or column_type == "image":
        return tensor.values
    try:
        return [v.decode() if isinstance(v, bytes) else v for v in tensor.values]
    except UnicodeDecodeError:
        raise BadRequestError(f"input {tensor.name!r}: BYTES values are not UTF-8 text") from None


def _matrix(endpoint: codecs.Signed, name: str, names: list[str], width: int, values: list[Any]) -> Table:
    """A single ``[rows, columns]`` tensor, its columns in signature order."""
    if width != len(names):
        raise BadRequestError(f"input {name!r} has {width} columns; the model takes {len(names)}: {', '.join(names)}")
    rows = [values[i : i + width] for i in range(0, len(values), width)]
    return codecs.from_rows(endpoint, names, rows)

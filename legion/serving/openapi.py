"""An OpenAPI 3.1 document for one model, built from its signature.

Served at ``/openapi.json`` and as Legion's ``/api/model/info``; client generators and schemathesis read it.
Each typed endpoint gets its era-b invoke body (``columns`` restricted to the signature, ``data`` rows typed per
column) and an era-a object schema with one property per column.
"""

from __future__ import annotations

from typing import Any

from legion import __version__
from legion.model.endpoints import Endpoint, UntypedEndpoint
from legion.model.loader import LoadedModel
from legion.model.manifest import ColumnSpec

_SCHEMAS: dict[str, dict[str, Any]] = {
    "int8": {"type": "integer", "minimum": -(2**7), "maximum": 2**7 - 1},
    "int16": {"type": "integer", "minimum": -(2**15), "maximum": 2**15 - 1},
    "int32": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "int64": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    "uint8": {"type": "integer", "minimum": 0, "maximum": 2**8 - 1},
    "uint16": {"type": "integer", "minimum": 0, "maximum": 2**16 - 1},
    "uint32": {"type": "integer", "minimum": 0, "maximum": 2**32 - 1},
    "uint64": {"type": "integer", "minimum": 0, "maximum": 2**64 - 1},
    "float32": {"type": "number"},
    "float64": {"type": "number"},
    "string": {"type": "string"},
    "boolean": {"type": "boolean"},
    "image": {
        "type": "string",
        "contentEncoding": "base64",
        "description": "image bytes, base64 or a data: URI",
    },
}
_ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def column_schema(column: ColumnSpec) -> dict[str, Any]:
    schema = dict(_SCHEMAS[column.type])
    if column.nullable:
        schema = {"anyOf": [schema, {"type": "null"}]}
    return schema


def describe_endpoint(endpoint: Endpoint) -> dict[str, Any]:
    """Legion era-a's description of an endpoint: whether it takes a DataFrame and its typed inputs."""
    if isinstance(endpoint, UntypedEndpoint):
        return {"use_df": False, "input_params": False, "description": endpoint.spec.description}
    return {
        "use_df": True,
        "input_params": {c.name: {"type": c.type, "nullable": c.nullable} for c in endpoint.columns},
        "output": [{"name": c.name, "type": c.type} for c in endpoint.spec.output or ()],
        "description": endpoint.spec.description,
    }


def _invoke_body(endpoint: Endpoint) -> dict[str, Any]:
    if isinstance(endpoint, UntypedEndpoint) or not endpoint.columns:
        return {"type": "object", "properties": {"columns": {"type": "array", "items": {"type": "string"}},
                                                 "data": {"type": "array", "items": {"type": "array"}}},
                "required": ["columns", "data"]}  # fmt: skip
    names = [c.name for c in endpoint.columns]
    return {
        "type": "object",
        "required": ["columns", "data"],
        "properties": {
            "columns": {"type": "array", "items": {"enum": names}, "const": names},
            "data": {
                "type": "array",
                "minItems": 1,
                "items": {
                    "type": "array",
                    "prefixItems": [column_schema(c) for c in endpoint.columns],
                    "minItems": len(names),
                    "maxItems": len(names),
                },
            },
        },
    }


def _object_body(endpoint: Endpoint) -> dict[str, Any]:
    if isinstance(endpoint, UntypedEndpoint) or not endpoint.columns:
        return {"type": "object"}
    return {
        "type": "object",
        "properties": {c.name: column_schema(c) for c in endpoint.columns},
        "required": [c.name for c in endpoint.columns],
        "additionalProperties": False,
    }


def _operation(summary: str, body: dict[str, Any], endpoint: str) -> dict[str, Any]:
    return {
        "summary": summary,
        "operationId": f"{summary.split(maxsplit=1)[0].lower()}_{endpoint}",
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "200": {"description": "the prediction", "content": {"application/json": {"schema": {}}}},
            "400": {"description": "malformed request", "content": {"application/json": {"schema": _ERROR}}},
            "422": {"description": "input does not match the signature",
                    "content": {"application/json": {"schema": _ERROR}}},
        },
    }  # fmt: skip


def openapi_document(model: LoadedModel) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    base_a = f"/api/model/{model.name}/{model.version}"
    for name, endpoint in model.endpoints.items():
        suffix = "" if name == "default" else f"/{name}"
        paths[f"/api/model/invoke{suffix}"] = {
            "post": _operation(f"Invoke endpoint {name} (Legion era-b)", _invoke_body(endpoint), name)
        }
        paths[f"{base_a}/invoke{suffix}"] = {
            "post": _operation(f"Call endpoint {name} (Legion era-a)", _object_body(endpoint), name)
        }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": model.name,
            "version": model.version,
            "description": f"Legion model {model.name}:{model.version} ({model.manifest.flavor})",
            "x-legion-version": __version__,
        },
        "paths": paths,
    }

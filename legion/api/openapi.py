"""The management API's OpenAPI document: self-contained, with every error answer it can give declared.

FastAPI builds the document from the routes; ``install`` post-processes it once, in this one place, so that a client
generator or a fuzzer (the suite runs schemathesis over it, ``tests/api/test_api_openapi.py``) reads what the server
really does:

- the ``$defs`` that pydantic nests in a request body's schema move to ``components/schemas`` (a ``#/$defs/...``
  reference inside an operation resolves against the document's root, where there is none);
- a route that takes the ``Authorization`` header (the ``caller`` dependency) declares the bearer scheme instead of
  a header parameter, and its 401 and 403 answers;
- every operation declares the ``application/problem+json`` answers it can give (``legion.api.problems``): 422 for
  a bad parameter or body, 400 and 413 for a body that is not JSON or too large, 404 for a path naming nothing;
  a route adds its own (409, ...) with ``responses=problem_answers(...)``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from legion.api.problems import PROBLEM

COMPONENTS: Final = "#/components/schemas/"
DESCRIPTIONS: Final = {
    400: "The request is malformed: a body that is not JSON, or of an unsupported content type",
    401: "No valid token: missing, expired, revoked or not for this API",
    403: "The token's roles do not allow this",
    404: "The path names nothing that exists",
    409: "The request conflicts with the stored state (exists already, changed meanwhile, still in use)",
    413: "The request body is over the API's limit",
    422: "The input is invalid; ``errors`` names every bad field and why",
}
PROBLEM_SCHEMA: Final = {
    "title": "Problem",
    "description": "An error, as RFC 9457 describes it",
    "type": "object",
    "required": ["type", "title", "status", "detail"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
        "errors": {"type": "object", "additionalProperties": {"type": "string"}},
    },
}
_FASTAPI_VALIDATION: Final = ("HTTPValidationError", "ValidationError")


def problem_answers(*statuses: int, **described: str) -> dict[int | str, dict[str, Any]]:
    """A route's extra error answers, e.g. ``responses=problem_answers(409)``; ``described`` overrides a text
    (``problem_answers(**{"409": "still in use"})``)."""
    answers: dict[int | str, dict[str, Any]] = {status: {"description": DESCRIPTIONS[status]} for status in statuses}
    answers.update({int(status): {"description": text} for status, text in described.items()})
    return answers


def install(app: FastAPI) -> None:
    """Serve the post-processed document at ``/openapi.json`` (built once, on the first request)."""
    built: dict[str, Any] = {}

    def openapi() -> dict[str, Any]:
        if not built:
            built.update(complete(get_openapi(title=app.title, version=app.version, routes=app.routes)))
        return built

    app.openapi = openapi  # type: ignore[method-assign]  # FastAPI's documented way to customise the document


def complete(document: dict[str, Any]) -> dict[str, Any]:
    """``document`` made self-contained and with every error answer declared (see the module docstring)."""
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for name in _FASTAPI_VALIDATION:  # 422s are problem documents, not FastAPI's shape
        schemas.pop(name, None)
    _hoist_defs(document, schemas)
    schemas["Problem"] = PROBLEM_SCHEMA
    components["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}}
    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            _complete_operation(operation)
    return document


def _complete_operation(operation: dict[str, Any]) -> None:
    parameters = operation.get("parameters", [])
    authenticated = any(p["in"] == "header" and p["name"].lower() == "authorization" for p in parameters)
    parameters = [p for p in parameters if not (p["in"] == "header" and p["name"].lower() == "authorization")]
    if parameters:
        operation["parameters"] = parameters
    else:
        operation.pop("parameters", None)
    statuses: set[int] = set()
    if authenticated:
        operation["security"] = [{"bearer": []}]
        statuses |= {401, 403}
    if parameters or "requestBody" in operation:
        statuses.add(422)
    if any(p["in"] == "path" for p in parameters):
        statuses.add(404)
    if "requestBody" in operation:
        statuses |= {400, 413}
    responses = operation.setdefault("responses", {})
    for status in statuses:
        responses.setdefault(str(status), {"description": DESCRIPTIONS[status]})
    if 422 not in statuses:  # FastAPI declares one for the Authorization header that is no parameter any more
        responses.pop("422", None)
    for status, answer in responses.items():
        if status.isdigit() and int(status) >= 400:
            answer["content"] = {PROBLEM: {"schema": {"$ref": f"{COMPONENTS}Problem"}}}
            if int(status) == 422 and answer.get("description") == "Validation Error":
                answer["description"] = DESCRIPTIONS[422]


def _hoist_defs(node: Any, schemas: dict[str, Any]) -> None:
    """Move every nested ``$defs`` into ``schemas`` and point its references there."""
    _walk(node, schemas, _rewrite_ref)


def _rewrite_ref(node: dict[str, Any], schemas: dict[str, Any]) -> None:
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#/$defs/"):
        node["$ref"] = COMPONENTS + ref.removeprefix("#/$defs/")
    for name, schema in node.pop("$defs", {}).items():
        _walk(schema, schemas, _rewrite_ref)
        if name in schemas and schemas[name] != schema:
            raise ValueError(f"two different schemas are named {name!r}; rename one of the models")
        schemas[name] = schema


def _walk(node: Any, schemas: dict[str, Any], visit: Callable[[dict[str, Any], dict[str, Any]], None]) -> None:
    if isinstance(node, dict):
        visit(node, schemas)
        for value in list(node.values()):
            _walk(value, schemas, visit)
    elif isinstance(node, list):
        for value in node:
            _walk(value, schemas, visit)

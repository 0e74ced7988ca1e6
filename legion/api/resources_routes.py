"""``/api/v1/<kind path>``: create, read, list, update and delete every resource kind, one router per kind.

The routes are thin: authorization (``Caller``), the body (``legion.api.bodies.read_document``) and the answer.
What a create, update or delete does is ``legion.api.services.ResourceService``'s (references checked, secrets
merged, deletion refused while others use the object), and every read is masked by ``public_document``. Listing
takes ``page``, ``size``, ``labels=k=v,k2=v2`` and ``search`` (part of the id); the total is in ``X-Total-Count``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request, Response
from fastapi.responses import JSONResponse

from legion.api.auth import Caller
from legion.api.bodies import read_document
from legion.api.openapi import problem_answers
from legion.api.services import ResourceService, public_document
from legion.api.storage.tables import ID_LENGTH
from legion.api.storage.values import LABEL_KEY, MAX_PAGE, MAX_PAGE_SIZE
from legion.core.errors import InvalidInputError
from legion.core.resources import KindInfo

_LABEL = rf"{LABEL_KEY.pattern}=[^,]*"
LABELS_PATTERN = rf"^({_LABEL}(,{_LABEL})*)?$"
"""``labels=k=v,k2=v2``: what ``_labels`` reads, as the OpenAPI document states it."""
ResourceId = Path(min_length=1, max_length=ID_LENGTH, description="the object's id")


def _labels(text: str | None) -> dict[str, str] | None:
    if not text:
        return None
    labels: dict[str, str] = {}
    for pair in text.split(","):
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise InvalidInputError.for_fields({"labels": f"{pair!r} is not key=value"})
        labels[key.strip()] = value.strip()
    return labels


PLATFORM_OWNED = {"description": "set by the platform: any value sent is ignored"}


def input_schema(info: KindInfo) -> dict[str, Any]:
    """The JSON Schema of a document a client sends: the model's, with what the platform owns (``status``, the
    times and generation in ``metadata``) stated as ignored, which is what ``parse_resource`` does with them."""
    schema = info.model.model_json_schema(by_alias=True)
    schema["properties"]["status"] = PLATFORM_OWNED
    metadata = schema.get("$defs", {}).get("Metadata", {}).get("properties", {})
    for name in ("createdAt", "updatedAt", "generation"):
        if name in metadata:
            metadata[name] = PLATFORM_OWNED
    return schema


def kind_router(info: KindInfo, service: ResourceService, caller: Callable[..., Caller], limit: int) -> APIRouter:
    """The five routes of one kind, with its schema in the OpenAPI document."""
    router = APIRouter(prefix=f"/api/v1{info.path}", tags=[info.name])
    schema = {"requestBody": {"required": True, "content": {"application/json": {"schema": input_schema(info)}}}}
    # what a schema cannot say: a reference to an object that does not exist is a 422 naming the field
    refused = problem_answers(409, **{"422": "The input is invalid, or names an object that does not exist"})

    @router.get("", summary=f"List {info.name} objects")
    def list_objects(  # noqa: PLR0917  # FastAPI passes each query parameter by keyword
        response: Response,
        who: Caller = Depends(caller),
        page: int = Query(0, ge=0, le=MAX_PAGE),
        size: int = Query(100, ge=1, le=MAX_PAGE_SIZE),
        labels: str | None = Query(None, pattern=LABELS_PATTERN, description="k=v,k2=v2: objects with every label"),
        search: str | None = Query(None, max_length=ID_LENGTH, description="part of the id"),
    ) -> list[dict[str, Any]]:
        who.can_read()
        found = service.store.list(info.name, labels=_labels(labels), search=search, page=page, size=size)
        response.headers["X-Total-Count"] = str(found.total)
        return [public_document(service.view(item)) for item in found.items]

    @router.get("/{resource_id}", summary=f"Get one {info.name}")
    def get_object(resource_id: str = ResourceId, who: Caller = Depends(caller)) -> dict[str, Any]:
        who.can_read()
        return public_document(service.view(service.store.get(info.name, resource_id)))

    @router.post("", status_code=201, summary=f"Create a {info.name}", openapi_extra=schema, responses=refused)
    async def create_object(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        who.can_write(info.name)
        created = service.create(info, await read_document(request, limit))
        return JSONResponse(public_document(created), status_code=201)

    @router.put("/{resource_id}", summary=f"Replace a {info.name}", openapi_extra=schema, responses=refused)
    async def update_object(
        request: Request, resource_id: str = ResourceId, who: Caller = Depends(caller)
    ) -> dict[str, Any]:
        who.can_write(info.name)
        return public_document(service.update(info, resource_id, await read_document(request, limit)))

    @router.delete("/{resource_id}", summary=f"Delete a {info.name}", responses=problem_answers(409))
    def delete_object(resource_id: str = ResourceId, who: Caller = Depends(caller)) -> dict[str, str]:
        who.can_write(info.name)
        service.delete(info, resource_id)
        return {"message": f"{info.name} {resource_id!r} is deleted"}

    return router

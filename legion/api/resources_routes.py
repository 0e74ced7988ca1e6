"""``/api/v1/<kind path>``: create, read, list, update and delete every resource kind, one router per kind.

A body is parsed by ``legion.core.resources.parse_resource`` (size guards, every bad field named), references are
checked against what is stored (a training's toolchain, a route's deployments, ...), and a Connection's secrets
are merged on update (``*****`` keeps the stored value) and masked on every read. Deleting an object that others
reference is refused, naming them. Listing takes ``page``, ``size``, ``labels=k=v,k2=v2`` and ``search`` (part
of the id); the total is in ``X-Total-Count``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse

from legion.api.auth import Caller
from legion.api.confinement import Confinement
from legion.api.storage import ResourceStore, StoredResource
from legion.core.errors import BadRequestError, ConflictError, InvalidInputError, NotFoundError, PayloadTooLargeError
from legion.core.resources import (
    KINDS,
    Connection,
    KindInfo,
    Resource,
    check_references,
    mask_secrets,
    merge_secrets,
    parse_resource,
    references,
    to_document,
)


def stored_resource(stored: StoredResource) -> Resource:
    """The typed resource behind a stored row."""
    return parse_resource(
        {
            "kind": stored.kind,
            "id": stored.id,
            "metadata": {
                "labels": stored.labels,
                "createdAt": stored.created_at,
                "updatedAt": stored.updated_at,
                "generation": stored.generation,
            },
            "spec": stored.spec,
            "status": stored.status,
        },
        keep_status=True,
    )


def public_document(resource: Resource) -> dict[str, Any]:
    """What a client sees: the wire document with secrets masked."""
    if isinstance(resource, Connection):
        resource = resource.model_copy(update={"spec": mask_secrets(resource.spec)})
    return to_document(resource)


async def read_document(request: Request, limit: int) -> Any:
    """The JSON body, refusing an oversized one (413) or one that is not JSON (400)."""
    kind = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if kind and kind != "application/json":
        raise BadRequestError(f"content type {kind!r} is not supported; send application/json")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLargeError(f"request body of {declared} bytes is over the limit of {limit} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLargeError(f"request body is over the limit of {limit} bytes")
    if not body.strip():
        raise BadRequestError("the request body is empty; send the resource as JSON")
    try:
        return json.loads(body)
    except ValueError as exc:
        raise BadRequestError(f"the request body is not valid JSON: {exc}") from None


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


class ResourceService:
    """The operations behind the routes, shared by every kind (and by ``apply`` from the CLI)."""

    def __init__(self, store: ResourceStore, on_change: Callable[[], None] = lambda: None, *,
                 managed_kinds: frozenset[str] = frozenset(),
                 confinement: Confinement | None = None) -> None:  # fmt: skip
        self.confinement = confinement
        """Where host paths in specs may point (``legion.api.confinement``); None: anywhere."""
        self.store = store
        self.on_change = on_change
        self.managed_kinds = managed_kinds
        """Kinds a reconcile loop tears down: deleting one marks it ``Deleting`` instead of removing it."""

    def lookup(self, kind: str, resource_id: str) -> Resource | None:
        try:
            return stored_resource(self.store.get(kind, resource_id))
        except NotFoundError:
            return None

    def _check(self, resource: Resource) -> None:
        problems = check_references(resource, self.lookup)
        problems |= self.confinement.problems(resource) if self.confinement else {}
        if problems:
            raise InvalidInputError.for_fields(problems, prefix=f"invalid {resource.kind} {resource.id!r}")

    def create(self, info: KindInfo, body: Any) -> Resource:
        resource = parse_resource(body, kind=info.name)
        if isinstance(resource, Connection):
            resource = resource.model_copy(update={"spec": merge_secrets(resource.spec, None)})
        self._check(resource)
        stored = self.store.create(info.name, resource.id, _spec(resource), resource.metadata.labels)
        self.on_change()
        return stored_resource(stored)

    def update(self, info: KindInfo, resource_id: str, body: Any) -> Resource:
        resource = parse_resource(body, kind=info.name)
        if resource.id != resource_id:
            raise BadRequestError(f"the body is {info.name} {resource.id!r} but the URL names {resource_id!r}")
        current = stored_resource(self.store.get(info.name, resource_id))
        if isinstance(resource, Connection) and isinstance(current, Connection):
            resource = resource.model_copy(update={"spec": merge_secrets(resource.spec, current.spec)})
        self._check(resource)
        stored = self.store.update(info.name, resource_id, _spec(resource), resource.metadata.labels)
        self.on_change()
        return stored_resource(stored)

    def delete(self, info: KindInfo, resource_id: str) -> None:
        self.store.get(info.name, resource_id)  # 404 before anything else
        users = [
            f"{other.kind} {other.id!r} ({ref.field})"
            for kind in KINDS.values()
            if any(rule.kind == info.name for rule in kind.references)
            for stored in self.store.list(kind.name, size=1000).items
            for other in [stored_resource(stored)]
            for ref in references(other)
            if ref.kind == info.name and ref.id == resource_id
        ]
        if users:
            raise ConflictError(f"{info.name} {resource_id!r} is still used by " + ", ".join(users))
        if info.name in self.managed_kinds:
            self.store.mark_deleting(info.name, resource_id)
        else:
            self.store.delete(info.name, resource_id)
        self.on_change()


def _spec(resource: Resource) -> dict[str, Any]:
    document = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
    spec: dict[str, Any] = document["spec"]
    return spec


def kind_router(info: KindInfo, service: ResourceService, caller: Callable[..., Caller], limit: int) -> APIRouter:
    """The five routes of one kind, with its schema in the OpenAPI document."""
    router = APIRouter(prefix=f"/api/v1{info.path}", tags=[info.name])
    schema = {"requestBody": {"required": True, "content": {"application/json": {
        "schema": info.model.model_json_schema(by_alias=True)}}}}  # fmt: skip

    @router.get("", summary=f"List {info.name} objects")
    def list_objects(  # noqa: PLR0917  # FastAPI passes each query parameter by keyword
        response: Response,
        who: Caller = Depends(caller),
        page: int = Query(0, ge=0),
        size: int = Query(100, ge=1, le=1000),
        labels: str | None = None,
        search: str | None = None,
    ) -> list[dict[str, Any]]:
        who.can_read()
        found = service.store.list(info.name, labels=_labels(labels), search=search, page=page, size=size)
        response.headers["X-Total-Count"] = str(found.total)
        return [public_document(stored_resource(item)) for item in found.items]

    @router.get("/{resource_id}", summary=f"Get one {info.name}")
    def get_object(resource_id: str, who: Caller = Depends(caller)) -> dict[str, Any]:
        who.can_read()
        return public_document(stored_resource(service.store.get(info.name, resource_id)))

    @router.post("", status_code=201, summary=f"Create a {info.name}", openapi_extra=schema)
    async def create_object(request: Request, who: Caller = Depends(caller)) -> JSONResponse:
        who.can_write(info.name)
        created = service.create(info, await read_document(request, limit))
        return JSONResponse(public_document(created), status_code=201)

    @router.put("/{resource_id}", summary=f"Replace a {info.name}", openapi_extra=schema)
    async def update_object(resource_id: str, request: Request, who: Caller = Depends(caller)) -> dict[str, Any]:
        who.can_write(info.name)
        return public_document(service.update(info, resource_id, await read_document(request, limit)))

    @router.delete("/{resource_id}", summary=f"Delete a {info.name}")
    def delete_object(resource_id: str, who: Caller = Depends(caller)) -> dict[str, str]:
        who.can_write(info.name)
        service.delete(info, resource_id)
        return {"message": f"{info.name} {resource_id!r} is deleted"}

    return router

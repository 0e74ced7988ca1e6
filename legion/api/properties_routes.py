"""``/api/v1/model/deployment/{id}/property``: a deployment's model properties, listed, read and set.

``GET .../property`` lists every property the deployment's model defines with the value its replicas hold and the
one saved with the model; ``GET .../property/{name}`` reads one; ``PUT .../property/{name}`` with a JSON value
(``10``, ``"high"``, ``true``) sets it for every replica, now and to come (data scientists and admins). What a set
does, and why a value is refused, is ``legion.api.services.PropertyService``'s.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Final

from fastapi import APIRouter, Depends, Path, Request
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from legion.api.auth import Caller
from legion.api.bodies import read_document
from legion.api.openapi import problem_answers
from legion.api.services import Property, PropertyService
from legion.api.storage.tables import ID_LENGTH
from legion.core.resources import KINDS

DeploymentId = Path(min_length=1, max_length=ID_LENGTH, description="the deployment's id")
PropertyName = Path(min_length=1, max_length=253, description="a property the deployment's model defines")
VALUE_SCHEMA: Final = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": ["boolean", "integer", "number", "string"]}}},
        "description": 'the new value, as JSON; text such as "0.7" is taken for a number property',
    }
}


class PropertyDocument(BaseModel):
    """One property of a deployment, as the API answers it."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    name: str
    value: Any = Field(description="what every replica of the deployment holds")
    model_value: Any = Field(description="the value saved with the model (null: the model does not define it)")

    @classmethod
    def of(cls, found: Property) -> PropertyDocument:
        return cls(name=found.name, value=found.value, model_value=found.model_value)


def properties_router(service: PropertyService, caller: Callable[..., Caller], limit: int) -> APIRouter:
    router = APIRouter(prefix=f"/api/v1{KINDS['ModelDeployment'].path}/{{resource_id}}/property", tags=["properties"])
    refused = problem_answers(
        409,
        **{
            "409": "The deployment is being deleted, or its model cannot be found yet",
            "422": "The model defines no such property, or the value does not fit its type",
        },
    )

    @router.get("", summary="List a deployment's model properties", response_model_by_alias=True)
    def list_properties(resource_id: str = DeploymentId, who: Caller = Depends(caller)) -> list[PropertyDocument]:
        who.can_read()
        return [PropertyDocument.of(found) for found in service.list(resource_id)]

    @router.get("/{name}", summary="Read one model property of a deployment", response_model_by_alias=True)
    def get_property(
        resource_id: str = DeploymentId, name: str = PropertyName, who: Caller = Depends(caller)
    ) -> PropertyDocument:
        who.can_read()
        return PropertyDocument.of(service.get(resource_id, name))

    @router.put(
        "/{name}",
        summary="Set a model property of a deployment, for every replica",
        openapi_extra=VALUE_SCHEMA,
        responses=refused,
        response_model_by_alias=True,
    )
    async def set_property(
        request: Request, resource_id: str = DeploymentId, name: str = PropertyName, who: Caller = Depends(caller)
    ) -> PropertyDocument:
        who.can_write("ModelDeployment")
        value = await read_document(request, limit)
        return PropertyDocument.of(await asyncio.to_thread(service.set, resource_id, name, value))

    return router

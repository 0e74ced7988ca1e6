"""``ResourceService``: the operations behind every kind's routes (and the CLI's ``apply``), without HTTP.

A body is parsed by ``legion.core.resources.parse_resource`` (size guards, every bad field named), references are
checked against what is stored (a training's toolchain, a route's deployments, ...), a deployment's properties
against what its model defines (when the model can be found), and a Connection's secrets are merged on update
(``*****`` keeps the stored value). Deleting an object that others reference is refused, naming them; deleting
a kind the reconcile loop manages only marks it ``Deleting``. ``public_document`` is what a client sees of a
resource: the wire document with secrets masked.

    service = ResourceService(store, on_change=reconciler.wake_threadsafe, managed_kinds={"ModelDeployment"})
    created = service.create(KINDS["ModelDeployment"], {"id": "income", "spec": {"image": "models/income"}})
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from legion.api.confinement import Confinement
from legion.api.services.properties import ModelProperties
from legion.api.storage import ResourceStore, StoredResource
from legion.api.storage.typed import stored_resource
from legion.core.errors import BadRequestError, ConflictError, InvalidInputError, NotFoundError
from legion.core.resources import (
    KINDS,
    Connection,
    KindInfo,
    ModelDeployment,
    ModelRoute,
    Resource,
    check_references,
    mask_secrets,
    merge_secrets,
    parse_resource,
    references,
    to_document,
)


def public_document(resource: Resource) -> dict[str, Any]:
    """What a client sees: the wire document with secrets masked."""
    if isinstance(resource, Connection):
        resource = resource.model_copy(update={"spec": mask_secrets(resource.spec)})
    return to_document(resource)


def route_status(route: ModelRoute, deployments: Mapping[str, Resource | None], gateway_url: str | None) -> Any:
    """A route's status from its deployments': ``Ready`` when every one it sends traffic to is ready, ``Failed``
    when one failed, else ``Processing``; ``edgeUrl`` is where callers reach it (the gateway's URL and the
    prefix when the API knows the gateway, else the prefix)."""
    states = [
        found.status.state if isinstance(found, ModelDeployment) else "Missing"
        for found in (deployments.get(t.md_name) for t in route.spec.model_deployments)
    ]
    state = "Ready" if all(s == "Ready" for s in states) else "Failed" if "Failed" in states else "Processing"
    edge = (gateway_url.rstrip("/") if gateway_url else "") + route.spec.url_prefix
    return route.status.model_copy(update={"state": state, "edge_url": edge})


class ResourceService:
    """The operations behind the routes, shared by every kind (and by ``apply`` from the CLI)."""

    def __init__(self, store: ResourceStore, on_change: Callable[[], None] = lambda: None, *,
                 managed_kinds: frozenset[str] = frozenset(), gateway_url: str | None = None,
                 confinement: Confinement | None = None,
                 properties: ModelProperties | None = None) -> None:  # fmt: skip
        self.confinement = confinement
        """Where host paths in specs may point (``legion.api.confinement``); None: anywhere."""
        self.properties = properties
        """What a deployment's model defines, to check its ``spec.properties``; None: not checked here."""
        self.store = store
        self.gateway_url = gateway_url
        """Where the gateway serves the routes (``LEGION_API_GATEWAY_URL``), for their ``edgeUrl``."""
        self.on_change = on_change
        self.managed_kinds = managed_kinds
        """Kinds a reconcile loop tears down: deleting one marks it ``Deleting`` instead of removing it."""

    def lookup(self, kind: str, resource_id: str) -> Resource | None:
        try:
            return stored_resource(self.store.get(kind, resource_id))
        except NotFoundError:
            return None

    def view(self, stored: StoredResource) -> Resource:
        """The resource as clients read it: a ModelRoute's status is computed from its deployments' at each read,
        so it follows them as they start, fail or go (the reconcile loop does not own routes)."""
        resource = stored_resource(stored)
        if isinstance(resource, ModelRoute):
            wanted = {t.md_name for t in resource.spec.model_deployments}
            found = {name: self.lookup("ModelDeployment", name) for name in wanted}
            resource = resource.model_copy(update={"status": route_status(resource, found, self.gateway_url)})
        return resource

    def _check(self, resource: Resource) -> None:
        problems = check_references(resource, self.lookup)
        problems |= self.confinement.problems(resource) if self.confinement else {}
        if self.properties is not None and isinstance(resource, ModelDeployment):
            problems |= self.properties.problems(resource)
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
            for stored in self.store.all(kind.name)  # every object, not a page of them
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

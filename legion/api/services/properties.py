"""``PropertyService``: a ModelDeployment's model properties, read and set against what its model defines.

A deployment's properties are part of its spec (``spec.properties``: the values every replica holds, over the ones
saved with the model), so setting one is a spec write like any other: it moves the deployment's generation, is
recorded in the store's change log and wakes the reconcile loop, whose runtime delivers the value to every replica
(``legion.api.runtime.properties``). The management API is the only way to change them: the gateway refuses to
pass a property write on to a replica, and the local runtime's replicas take one only from the runtime.

What the model defines comes from its manifest at the deployment's image, read without loading the model
(``ModelProperties``; images are model paths on this machine with the local runtime, the only one that runs
replicas today). A name the model does not define, or a value that does not fit the property's type, is a 422
naming the property; a deployment whose model cannot be read (yet: a packaging may still be making it) is a 409.

    service = PropertyService(store, ModelProperties(confinement), on_change=reconciler.wake_threadsafe)
    service.set("summation", "multiplier", "10")   # Property(name="multiplier", value=10, model_value=1)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from legion.api.confinement import Confinement
from legion.api.storage import ResourceStore, StoredResource
from legion.core.errors import ConflictError, InvalidInputError, LegionError, NotFoundError
from legion.core.resources import ModelDeployment, parse_resource
from legion.model.manifest import saved_manifest
from legion.model.properties import check_values

KIND: Final = "ModelDeployment"
WRITE_ATTEMPTS: Final = 5
"""How often a set is tried again when another write to the deployment came in between its read and its write."""


@dataclass(frozen=True, slots=True)
class Property:
    """One property of a deployment: the value its replicas hold, and the one saved with the model."""

    name: str
    value: Any
    model_value: Any


@dataclass(frozen=True, slots=True)
class ModelProperties:
    """Finds the properties (name → saved value) that a deployment's model defines, without loading the model."""

    confinement: Confinement

    def of(self, image: str) -> dict[str, Any] | None:
        """The properties the model of a deployment of ``image`` defines; None when the model cannot be read."""
        path = self.confinement.image_path(image)
        if path is None:
            return None
        try:
            return dict(saved_manifest(path).properties)
        except LegionError:
            return None  # not a Legion model (yet): a packaging may still be making it

    def problems(self, deployment: ModelDeployment) -> dict[str, str]:
        """``{spec.properties.<name>: why}`` for each value the deployment's model does not take; nothing when the
        model cannot be read yet (its replicas check the values when they start)."""
        wanted = deployment.spec.properties
        defined = self.of(deployment.spec.image) if wanted else None
        if defined is None:
            return {}
        try:
            check_values(defined, wanted, where="spec.properties.")
        except InvalidInputError as exc:
            return exc.fields
        return {}


class PropertyService:
    """Read and set the properties of stored ModelDeployments; ``on_change`` is told after each write."""

    def __init__(self, store: ResourceStore, models: ModelProperties, on_change: Callable[[], None]) -> None:
        self.store = store
        self.models = models
        self.on_change = on_change

    def list(self, deployment_id: str) -> list[Property]:
        """Every property the deployment's model defines, then any the deployment sets that it does not."""
        stored = self.store.get(KIND, deployment_id)
        defined = self.models.of(str(stored.spec.get("image", ""))) or {}
        values: dict[str, Any] = stored.spec.get("properties", {})
        listed = [Property(name, values.get(name, saved), saved) for name, saved in sorted(defined.items())]
        listed += [Property(name, value, None) for name, value in sorted(values.items()) if name not in defined]
        return listed

    def get(self, deployment_id: str, name: str) -> Property:
        for found in self.list(deployment_id):
            if found.name == name:
                return found
        raise NotFoundError(f"deployment {deployment_id!r} has no property {name!r}")

    def set(self, deployment_id: str, name: str, value: Any) -> Property:
        """Store ``value`` (coerced to the property's type) as the deployment's ``name``, for every replica."""
        if value is None or isinstance(value, dict | list):
            raise InvalidInputError.for_fields({name: "send one JSON number, string or boolean"})
        for _ in range(WRITE_ATTEMPTS):
            stored = self.store.get(KIND, deployment_id)
            if stored.deleting:
                raise ConflictError(f"deployment {deployment_id!r} is being deleted")
            defined = self._defined(stored)
            coerced = check_values(defined, {name: value})[name]
            spec = {**stored.spec, "properties": {**stored.spec.get("properties", {}), name: coerced}}
            resource = parse_resource({"kind": KIND, "id": deployment_id, "spec": spec})
            document = resource.model_dump(mode="json", by_alias=True, exclude_none=True)["spec"]
            try:
                self.store.update(KIND, deployment_id, document, expected_version=stored.version)
            except ConflictError:
                continue  # written meanwhile (a status, most likely): read it again
            self.on_change()
            return Property(name, coerced, defined[name])
        raise ConflictError(f"deployment {deployment_id!r} kept changing; try again")

    def _defined(self, stored: StoredResource) -> dict[str, Any]:
        defined = self.models.of(str(stored.spec.get("image", "")))
        if defined is None:
            raise ConflictError(
                f"the model of deployment {stored.id!r} cannot be read (yet): its image "
                f"{stored.spec.get('image')!r} is not a Legion model on the API's machine, so its properties are "
                "not known"
            )
        return defined

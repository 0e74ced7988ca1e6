"""The kinds that serve traffic: ``ModelDeployment`` (replicas of one model) and ``ModelRoute`` (a URL prefix that
splits, by weight, between deployments and may mirror traffic to one more).

Every deployment also gets ``/model/<id>`` of its own from the gateway, and the gateway answers ``/feedback/...`` and
``/api/...``; so a route may not claim those prefixes.
"""

from __future__ import annotations

import json
import math
import re
from datetime import datetime
from typing import Annotated, ClassVar, Final, Literal, get_args

from pydantic import AfterValidator, Field, PlainValidator, StringConstraints, WithJsonSchema, model_validator

from legion.core.resources.base import (
    EnforcedLimits,
    Image,
    Loc,
    ResourceBase,
    ResourceId,
    ResourceRequirements,
    Resources,
    WireModel,
    fill,
    raise_problems,
)

DeploymentState = Literal["Processing", "Ready", "Failed", "Deleting"]
DEPLOYMENT_STATES: Final[tuple[str, ...]] = get_args(DeploymentState)
RouteState = Literal["Processing", "Ready", "Failed"]
ROUTE_STATES: Final[tuple[str, ...]] = get_args(RouteState)

DEFAULT_MIN_REPLICAS: Final = 1
DEFAULT_PREDICTION_LOGGING: Final = True
DEFAULT_PROBE_INITIAL_DELAY_S: Final = 2
RESERVED_URL_PREFIXES: Final = ("/model", "/feedback", "/api")
TOTAL_WEIGHT: Final = 100
_SEGMENT: Final = re.compile(r"[A-Za-z0-9._~-]+")
MAX_PROPERTIES_BYTES: Final = 32 * 1024
"""The most a deployment's properties may take as JSON: they are tunables, not data, and a replica is started with
them in its environment (where one variable may hold at most 128 KiB)."""


def _property_value(value: object) -> bool | int | float | str:
    if isinstance(value, bool | int | str) or (isinstance(value, float) and math.isfinite(value)):
        return value
    raise ValueError(f"{str(value)[:80]} is not one number, text or boolean")


PropertyName = Annotated[str, StringConstraints(min_length=1, max_length=253)]
PropertyValue = Annotated[
    bool | int | float | str,
    PlainValidator(_property_value),
    WithJsonSchema({"type": ["boolean", "integer", "number", "string"]}),
]
"""One value, kept as the JSON scalar it was sent as (the model's property turns it into its own type)."""


class ModelDeploymentSpec(WireModel):
    """Replicas of one model. ``image`` is an OCI image for the container runtimes, or a model or local package
    path for the local runtime. ``minReplicas: 0`` lets the deployment scale to zero; ``maxReplicas`` defaults to
    ``max(minReplicas, 1)``."""

    image: Image
    min_replicas: int = Field(default=DEFAULT_MIN_REPLICAS, ge=0)
    max_replicas: int = Field(default=DEFAULT_MIN_REPLICAS, ge=1)
    resources: Resources = Field(default_factory=ResourceRequirements)
    liveness_probe_initial_delay: int = Field(default=DEFAULT_PROBE_INITIAL_DELAY_S, ge=0, description="seconds")
    readiness_probe_initial_delay: int = Field(default=DEFAULT_PROBE_INITIAL_DELAY_S, ge=0, description="seconds")
    image_pull_conn_id: ResourceId | None = Field(default=None, alias="imagePullConnID")
    role_name: str | None = None
    annotations: dict[str, str] = Field(default_factory=dict)
    prediction_logging: bool = Field(
        default=DEFAULT_PREDICTION_LOGGING,
        description="log every prediction and its response through the gateway (DESIGN §5)",
    )
    properties: dict[PropertyName, PropertyValue] = Field(
        default_factory=dict,
        description="values of the model's properties for every replica, over the ones saved with the model "
        "(`legion model property set`); each must be one the model defines, of its type",
    )

    @model_validator(mode="after")
    def _replicas(self) -> ModelDeploymentSpec:
        if "max_replicas" not in self.model_fields_set:
            fill(self, "max_replicas", max(self.min_replicas, 1))
        elif self.max_replicas < self.min_replicas:
            why = f"{self.max_replicas} is less than minReplicas ({self.min_replicas})"
            raise_problems("ModelDeploymentSpec", [(("maxReplicas",), why)])
        size = len(json.dumps(self.properties))
        if size > MAX_PROPERTIES_BYTES:
            why = f"{size} bytes of JSON; at most {MAX_PROPERTIES_BYTES}"
            raise_problems("ModelDeploymentSpec", [(("properties",), why)])
        return self


class ModelDeploymentStatus(WireModel):
    FAILED_STATE: ClassVar[str] = "Failed"
    """The state that keeps a ``reason`` (see ``StatusPatch``)."""

    state: DeploymentState = "Processing"
    replicas: int = 0
    available_replicas: int = 0
    service_url: str | None = Field(default=None, alias="serviceURL")
    endpoints: list[str] = Field(default_factory=list, description="base URLs of the ready replicas")
    model_name: str | None = None
    model_version: str | None = None
    observed_generation: int | None = Field(default=None, description="the spec generation this status describes")
    last_updated_time: datetime | None = None
    enforced_limits: EnforcedLimits | None = Field(
        default=None, description="how the runtime holds each replica to spec.resources.limits"
    )
    reason: str | None = None
    message: str | None = None


class ModelDeployment(ResourceBase):
    kind: Literal["ModelDeployment"] = "ModelDeployment"
    spec: ModelDeploymentSpec
    status: ModelDeploymentStatus = Field(default_factory=ModelDeploymentStatus)


def _check_url_prefix(value: str) -> str:
    """A path of plain segments under '/', outside the gateway's own prefixes; a trailing '/' is dropped."""
    if not value.startswith("/"):
        raise ValueError("must start with '/'")
    if "?" in value or "#" in value:
        raise ValueError("must be a path only, without a query string or fragment")
    path = value.rstrip("/") if len(value) > 1 else value
    segments = path.split("/")[1:]
    if path == "/" or not path:
        raise ValueError("must name a path below '/', e.g. /custom/income")
    if any(s in (".", "..") for s in segments):
        raise ValueError("must not contain '.' or '..' segments")
    if any(not s for s in segments):
        raise ValueError("must not contain empty segments ('//')")
    if not all(_SEGMENT.fullmatch(s) for s in segments):
        raise ValueError("may only contain letters, digits, '-', '.', '_' and '~' between slashes")
    for reserved in RESERVED_URL_PREFIXES:
        if path == reserved or path.startswith(reserved + "/"):
            raise ValueError(f"{reserved} and the paths under it are reserved for the gateway")
    return path


UrlPrefix = Annotated[str, AfterValidator(_check_url_prefix)]


class ModelDeploymentTarget(WireModel):
    md_name: ResourceId
    weight: int = Field(default=TOTAL_WEIGHT, ge=0, le=TOTAL_WEIGHT, description="percent of the route's traffic")


class ModelRouteSpec(WireModel):
    """Send ``urlPrefix/...`` to the deployments by weight (percent, summing to 100; a lone deployment may omit
    it) and, when ``mirror`` is set, a copy of each request to that deployment, whose answers are dropped."""

    url_prefix: UrlPrefix
    model_deployments: list[ModelDeploymentTarget] = Field(min_length=1)
    mirror: ResourceId | None = None

    @model_validator(mode="after")
    def _weights(self) -> ModelRouteSpec:
        targets = self.model_deployments
        problems: list[tuple[Loc, str]] = []
        if len(targets) == 1 and targets[0].weight != TOTAL_WEIGHT:
            why = f"a single deployment takes all the traffic: omit the weight or give {TOTAL_WEIGHT}"
            problems.append((("modelDeployments", 0, "weight"), why))
        elif len(targets) > 1:
            missing = [i for i, t in enumerate(targets) if "weight" not in t.model_fields_set]
            for i in missing:
                why = "required when the route splits traffic between several deployments"
                problems.append((("modelDeployments", i, "weight"), why))
            total = sum(t.weight for t in targets)
            if not missing and total != TOTAL_WEIGHT:
                problems.append((("modelDeployments",), f"the weights sum to {total}, not {TOTAL_WEIGHT}"))
        seen: set[str] = set()
        for i, target in enumerate(targets):
            if target.md_name in seen:
                problems.append((("modelDeployments", i, "mdName"), f"{target.md_name!r} is routed to twice"))
            seen.add(target.md_name)
        if self.mirror is not None and self.mirror in seen:
            problems.append((("mirror",), f"{self.mirror!r} is already routed to; mirror to another deployment"))
        raise_problems("ModelRouteSpec", problems)
        return self


class ModelRouteStatus(WireModel):
    state: RouteState = "Processing"
    edge_url: str | None = None


class ModelRoute(ResourceBase):
    kind: Literal["ModelRoute"] = "ModelRoute"
    spec: ModelRouteSpec
    status: ModelRouteStatus = Field(default_factory=ModelRouteStatus)

"""The routing snapshot: what ``GET /api/v1/routing`` answers and the gateway routes by, defined once for both.

The management API builds a ``RoutingSnapshot`` from its stored ModelDeployments and ModelRoutes
(``legion.api.routing_routes``) and the gateway validates the same document back into it
(``legion.gateway.table.RoutingTable.parse``); a routing file given to ``legion gateway --routing-file`` has the
same shape. camelCase on the wire, snake_case in Python::

    {"etag": "3f2a...", "revokedTokens": ["jti-1"],
     "deployments": [{"id": "income-v1", "state": "Ready", "minReplicas": 1, "maxReplicas": 2,
                      "endpoints": ["http://127.0.0.1:41234"], "modelName": "income", "modelVersion": "1.0",
                      "deleting": false, "predictionLogging": true}],
     "routes": [{"id": "income", "urlPrefix": "/income", "mirror": null,
                 "modelDeployments": [{"mdName": "income-v1", "weight": 100}]}]}

A field left out takes the default written here (the resource kinds' own where they have one), so neither side
states a default of its own. Unknown fields are ignored: a newer API may say more than an older gateway reads.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from legion.core.resources.serving import DEFAULT_MIN_REPLICAS, DEFAULT_PREDICTION_LOGGING, TOTAL_WEIGHT


class _RoutingWire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore", frozen=True)


class RoutingDeployment(_RoutingWire):
    """A ModelDeployment as the gateway needs it: its state, replica bounds, ready replicas and their model."""

    id: str
    state: str = "Processing"
    min_replicas: int = DEFAULT_MIN_REPLICAS
    max_replicas: int = DEFAULT_MIN_REPLICAS
    endpoints: list[str] = Field(default_factory=list, description="base URLs of the ready replicas")
    model_name: str | None = Field(default=None, description="as the replicas said it; None until one is ready")
    model_version: str | None = None
    deleting: bool = False
    prediction_logging: bool = DEFAULT_PREDICTION_LOGGING


class RoutingTarget(_RoutingWire):
    """One deployment of a route and its share of the traffic (percent)."""

    md_name: str
    weight: int = Field(default=TOTAL_WEIGHT, ge=0)


class RoutingRoute(_RoutingWire):
    """A ModelRoute: a URL prefix split between deployments, and an optional mirror."""

    id: str
    url_prefix: str
    model_deployments: list[RoutingTarget]
    mirror: str | None = None


class RoutingSnapshot(_RoutingWire):
    """The whole document; ``etag`` moves whenever any other part of it does."""

    etag: str
    deployments: list[RoutingDeployment] = Field(default_factory=list)
    routes: list[RoutingRoute] = Field(default_factory=list)
    revoked_tokens: list[str] = Field(default_factory=list, description="ids (jti) of revoked model tokens")

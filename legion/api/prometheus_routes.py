"""``GET /api/v1/prometheus/targets``: what Prometheus should scrape, in its HTTP service-discovery format.

Prometheus' ``http_sd_configs`` polls this document and scrapes what it lists, so its targets follow deployments as
they come and go without a reload: every ready replica of every deployment (``component="model"`` with the
``deployment``, ``model`` and ``version`` it serves) and this API itself (``component="api"``). The gateway does not
register with the API, so the scrape configuration lists it statically (``legion up --prometheus`` does).

The answer is a JSON list of target groups, one per replica (so each carries its own scheme and path)::

    [{"targets": ["127.0.0.1:40123"],
      "labels": {"__scheme__": "http", "__metrics_path__": "/metrics", "component": "model",
                 "deployment": "census-income", "model": "census-income", "version": "1.0"}}]

``?component=api`` or ``?component=model`` keeps one kind, so a scrape configuration can give each its own job: the
API's ``/metrics`` needs a token, and a replica (which runs a user's model code) must not be sent one. The API's own
address is the one the caller used to reach it: whoever fetched this document can reach it there. Replicas whose
address is not HTTP (the in-memory runtime's ``memory://`` stand-ins) are left out: nothing could scrape them.
Reads need the same auth as every other read (a ``viewer`` token is enough).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any, Literal
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request

from legion.api.auth import Caller
from legion.api.storage import ResourceStore, StoredResource

Component = Literal["api", "model"]
SCRAPEABLE_SCHEMES = frozenset({"http", "https"})


def _group(base_url: str, labels: dict[str, str]) -> dict[str, Any] | None:
    """One target group for the service at ``base_url`` (its ``/metrics`` under that path), or None if not HTTP."""
    parts = urlsplit(base_url)
    if parts.scheme not in SCRAPEABLE_SCHEMES or not parts.netloc:
        return None
    return {
        "targets": [parts.netloc],
        "labels": {"__scheme__": parts.scheme, "__metrics_path__": parts.path.rstrip("/") + "/metrics", **labels},
    }


def model_groups(deployments: Iterable[StoredResource]) -> list[dict[str, Any]]:
    """A group per ready replica of each deployment that is not being deleted."""
    groups = []
    for deployment in deployments:
        if deployment.deleting:
            continue
        labels = {"component": "model", "deployment": deployment.id}
        for key, field in (("model", "modelName"), ("version", "modelVersion")):
            if deployment.status.get(field):
                labels[key] = str(deployment.status[field])
        for endpoint in deployment.status.get("endpoints", []):
            group = _group(str(endpoint), labels)
            if group is not None:
                groups.append(group)
    return groups


def prometheus_router(store: ResourceStore, caller: Any) -> APIRouter:
    router = APIRouter(prefix="/api/v1/prometheus", tags=["observability"])

    @router.get("/targets")
    async def targets(
        request: Request, component: Component | None = None, who: Caller = Depends(caller)
    ) -> list[dict[str, Any]]:
        """Scrape targets in Prometheus' ``http_sd`` format; ``component`` keeps only ``api`` or ``model`` ones."""
        who.can_read()
        groups: list[dict[str, Any]] = []
        if component in (None, "api"):
            api = _group(str(request.base_url), {"component": "api"})
            groups.extend([api] if api else [])
        if component in (None, "model"):
            groups.extend(model_groups(await asyncio.to_thread(store.all, "ModelDeployment")))
        return groups

    return router

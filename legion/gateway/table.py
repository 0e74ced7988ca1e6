"""The routing table: the management API's routing snapshot, checked once and frozen.

``RoutingTable.parse(document)`` reads the wire document of ``GET /api/v1/routing`` with the models the API builds
it from (``legion.core.routing``; a malformed snapshot is refused whole and the gateway keeps the table it has)
into frozen values. A table is never changed: a new snapshot builds a new table and the gateway swaps one
reference, so a request that started with the old table finishes with it and no request is dropped by a change.

``resolve(table, path)`` says what a request path means: which deployment or route it addresses, what path the
replica is sent, and whether it needs a token. The paths, in the order they are tried:

- ``/feedback/model/<deployment>`` and ``/api/model/<name>/<version>/feedback``: feedback (DESIGN §5);
- ``/model/<deployment>/<rest>``: that deployment, replica path ``/<rest>``;
- ``/api/model/<name>/<version>/(info|invoke|batch)…``: the deployment serving that model version, path unchanged;
- ``<urlPrefix>/<rest>`` of a ModelRoute (longest prefix first): its weighted deployments, replica path ``/<rest>``.

``writes_properties(method, path)`` says whether a request would change a replica's model properties: those belong
to the deployment and are set through the management API only, so the gateway passes none on, whatever the
spelling of the path (the replica's server decodes percent-escapes; an HTTP client may resolve ``..``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal
from urllib.parse import unquote

from pydantic import ValidationError

from legion.core.errors import InvalidInputError
from legion.core.resources.serving import DEFAULT_PREDICTION_LOGGING
from legion.core.routing import RoutingSnapshot

# Replica paths anyone may call: liveness, readiness and metrics. A model's ``info`` is not among them.
OPEN_PATHS: Final = frozenset(
    {b"/healthcheck", b"/health", b"/ping", b"/metrics", b"/v2/health/live", b"/v2/health/ready"}
)
VERSION_ACTIONS: Final = frozenset({"info", "invoke", "batch"})
PROPERTIES_PATH: Final = "/api/model/properties"
"""Where a replica's model properties are read and (by the platform only) written."""
_READS: Final = frozenset({"GET", "HEAD"})
_UNUSUAL: Final = (b"%", b"/.", b"//", b"\\")


@dataclass(frozen=True, slots=True)
class Deployment:
    """A ModelDeployment as the gateway sees it: its ready replicas and the model they serve."""

    id: str
    state: str
    min_replicas: int
    endpoints: tuple[str, ...]
    model_name: str | None
    model_version: str | None
    deleting: bool = False
    prediction_logging: bool = DEFAULT_PREDICTION_LOGGING
    """Log this deployment's predictions (``spec.predictionLogging``)."""

    @property
    def identity(self) -> tuple[str, str] | None:
        """``(name, version)`` of the model, once a replica has said it."""
        if self.model_name is None or self.model_version is None:
            return None
        return self.model_name, self.model_version


@dataclass(frozen=True, slots=True)
class Route:
    """A ModelRoute: deployments with weights (percent) and an optional mirror."""

    id: str
    prefix: bytes
    targets: tuple[tuple[str, int], ...]
    mirror: str | None


@dataclass(frozen=True, slots=True)
class RoutingTable:
    """One routing snapshot, indexed for lookups by path, deployment and model version."""

    etag: str
    deployments: Mapping[str, Deployment]
    routes: tuple[Route, ...]  # longest prefix first
    revoked: frozenset[str]
    by_model: Mapping[tuple[str, str], tuple[str, ...]]

    @classmethod
    def parse(cls, document: Any) -> RoutingTable:
        """A table from the wire document; ``InvalidInputError`` naming the bad fields otherwise."""
        try:
            wire = RoutingSnapshot.model_validate(document)
        except ValidationError as exc:
            problems = {".".join(str(p) for p in e["loc"]): e["msg"] for e in exc.errors()}
            raise InvalidInputError.for_fields(problems, prefix="invalid routing snapshot") from None
        deployments = {
            d.id: Deployment(
                d.id,
                d.state,
                d.min_replicas,
                tuple(d.endpoints),
                d.model_name,
                d.model_version,
                d.deleting,
                d.prediction_logging,
            )
            for d in wire.deployments
        }
        routes = sorted(
            (
                Route(
                    r.id,
                    r.url_prefix.rstrip("/").encode(),
                    tuple((t.md_name, t.weight) for t in r.model_deployments if t.weight > 0),
                    r.mirror,
                )
                for r in wire.routes
            ),
            key=lambda r: -len(r.prefix),
        )
        by_model: dict[tuple[str, str], list[str]] = {}
        for deployment in deployments.values():
            if deployment.identity is not None and not deployment.deleting:
                by_model.setdefault(deployment.identity, []).append(deployment.id)
        return cls(
            wire.etag,
            deployments,
            tuple(routes),
            frozenset(wire.revoked_tokens),
            {k: tuple(sorted(v, key=lambda i: -len(deployments[i].endpoints))) for k, v in by_model.items()},
        )

    @classmethod
    def empty(cls) -> RoutingTable:
        return cls("", {}, (), frozenset(), {})


@dataclass(frozen=True, slots=True)
class Target:
    """What a request path addresses.

    ``kind``: ``deployment`` (``/model/<id>``), ``version`` (``/api/model/<name>/<version>``), ``route`` (a
    ModelRoute's prefix) or ``feedback``. ``deployments`` are the candidates (one, or a route's weighted set);
    ``path`` is what the replica is sent; ``model`` is the version named in the path, when there is one.
    """

    kind: Literal["deployment", "version", "route", "feedback"]
    path: bytes
    open: bool
    deployment: str | None = None
    route: Route | None = None
    model: tuple[str, str] | None = None


def writes_properties(method: str, path: bytes) -> bool:
    """Whether a ``method`` request for the replica path ``path`` would write model properties: anything but a
    read of ``/api/model/properties`` (or a path under it), compared as a server would take the path (escapes
    decoded, ``.``/``..`` and empty segments resolved, a trailing slash dropped) and in any case."""
    if method in _READS:
        return False
    if not any(mark in path for mark in _UNUSUAL):  # the common case, without the work below
        return path.lower().startswith(PROPERTIES_PATH.encode())
    text = path.decode("latin-1")
    for _ in range(3):  # escapes of escapes: decoded as often as a chain of servers might
        text = unquote(text, encoding="latin-1").replace("\\", "/")
    segments: list[str] = []
    for segment in text.split("/"):
        if segment == "..":
            segments = segments[:-1]
        elif segment not in ("", "."):
            segments.append(segment)
    return ("/" + "/".join(segments)).lower().startswith(PROPERTIES_PATH)


def _split(path: bytes, count: int) -> list[bytes]:
    return path.split(b"/", count)


def resolve(table: RoutingTable, path: bytes) -> Target | None:  # noqa: PLR0911  # a return per kind of path
    """What ``path`` (the raw path, without query string) addresses in ``table``; ``None``: nothing."""
    if path.startswith(b"/feedback/model/"):
        name = path[len(b"/feedback/model/") :].rstrip(b"/")
        if name and b"/" not in name:
            return Target("feedback", path, open=False, deployment=name.decode("latin-1"))
        return None
    if path.startswith(b"/model/"):
        parts = _split(path, 3)  # ['', 'model', id, rest]
        rest = b"/" + parts[3] if len(parts) > 3 else b"/"
        if not parts[2]:
            return None
        return Target("deployment", rest, open=rest in OPEN_PATHS, deployment=parts[2].decode("latin-1"))
    if path.startswith(b"/api/model/"):
        parts = _split(path, 6)  # ['', 'api', 'model', name, version, action, ...]
        if len(parts) >= 6 and parts[3] and parts[4]:
            model = (parts[3].decode("latin-1"), parts[4].decode("latin-1"))
            action = parts[5].decode("latin-1")
            if action == "feedback" and len(parts) == 6:
                return Target("feedback", path, open=False, model=model)
            if action in VERSION_ACTIONS:
                return Target("version", path, open=False, model=model)
    for route in table.routes:
        prefix = route.prefix
        if path == prefix or (path.startswith(prefix) and path[len(prefix) : len(prefix) + 1] == b"/"):
            rest = path[len(prefix) :] or b"/"
            return Target("route", rest, open=rest in OPEN_PATHS, route=route)
    return None

"""The table of kinds — name, CLI short name, URL path, model, references — and the reference checks built on it.

The management API mounts ``/api/v1<path>`` for each row, the CLI accepts the name, the short name or an alias,
and before storing a resource the API checks that everything it references exists (``check_references``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, NamedTuple, TypeAlias

from legion.core.errors import InvalidInputError
from legion.core.resources.connection import Connection
from legion.core.resources.jobs import ModelPackaging, ModelTraining, PackagingIntegration, ToolchainIntegration
from legion.core.resources.serving import ModelDeployment, ModelRoute

Resource: TypeAlias = (
    Connection
    | ToolchainIntegration
    | PackagingIntegration
    | ModelTraining
    | ModelPackaging
    | ModelDeployment
    | ModelRoute
)


@dataclass(frozen=True)
class ReferenceField:
    """A field of a kind that names another resource. ``path`` is dotted wire names with ``*`` for each list item;
    ``connection_types`` narrows a Connection reference to the types that fit (empty: any)."""

    kind: str
    path: str
    connection_types: tuple[str, ...] = ()


@dataclass(frozen=True)
class KindInfo:
    name: str
    short_name: str
    path: str
    model: type[Resource]
    aliases: tuple[str, ...] = ()
    references: tuple[ReferenceField, ...] = ()


class Reference(NamedTuple):
    """One concrete reference: ``("Connection", "wine-data", "spec.data.0.connName")``."""

    kind: str
    id: str
    field: str


_STORAGE = ("s3", "gcs", "azureblob", "local")
_REGISTRIES = ("docker", "ecr")

KINDS: Mapping[str, KindInfo] = MappingProxyType(
    {
        info.name: info
        for info in (
            KindInfo(
                "Connection",
                "conn",
                "/connection",
                Connection,
                aliases=("connection", "connections"),
            ),
            KindInfo(
                "ToolchainIntegration",
                "ti",
                "/toolchain/integration",
                ToolchainIntegration,
                aliases=("toolchain-integration", "toolchain"),
            ),
            KindInfo(
                "PackagingIntegration",
                "pi",
                "/packaging/integration",
                PackagingIntegration,
                aliases=("packaging-integration",),
                references=(ReferenceField("Connection", "spec.schema.targets.*.default"),),
            ),
            KindInfo(
                "ModelTraining",
                "train",
                "/model/training",
                ModelTraining,
                aliases=("training", "trainings", "mt"),
                references=(
                    ReferenceField("ToolchainIntegration", "spec.toolchain"),
                    ReferenceField("Connection", "spec.vcsName", ("git",)),
                    ReferenceField("Connection", "spec.data.*.connName", _STORAGE),
                ),
            ),
            KindInfo(
                "ModelPackaging",
                "pack",
                "/model/packaging",
                ModelPackaging,
                aliases=("packaging", "packagings", "mp"),
                references=(
                    ReferenceField("PackagingIntegration", "spec.integrationName"),
                    ReferenceField("Connection", "spec.targets.*.connectionName"),
                ),
            ),
            KindInfo(
                "ModelDeployment",
                "dep",
                "/model/deployment",
                ModelDeployment,
                aliases=("deployment", "deployments", "md"),
                references=(ReferenceField("Connection", "spec.imagePullConnID", _REGISTRIES),),
            ),
            KindInfo(
                "ModelRoute",
                "route",
                "/model/route",
                ModelRoute,
                aliases=("routes", "mr"),
                references=(
                    ReferenceField("ModelDeployment", "spec.modelDeployments.*.mdName"),
                    ReferenceField("ModelDeployment", "spec.mirror"),
                ),
            ),
        )
    }
)


def find_kind(name: str) -> KindInfo:
    """The kind called ``name``: its kind name, short name or an alias, in any case.

    >>> find_kind("dep").name
    'ModelDeployment'
    """
    wanted = name.strip().lower()
    for info in KINDS.values():
        if wanted in (info.name.lower(), info.short_name, *info.aliases):
            return info
    raise InvalidInputError(
        f"unknown kind {name!r}; known kinds: " + ", ".join(f"{i.name} ({i.short_name})" for i in KINDS.values()),
        fields={"kind": f"unknown kind {name!r}"},
    )


def _resolve(value: Any, parts: list[str], where: str) -> Iterator[tuple[str, Any]]:
    if not parts:
        if value is not None:
            yield where, value
        return
    head, rest = parts[0], parts[1:]
    if head == "*":
        for i, item in enumerate(value if isinstance(value, list) else []):
            yield from _resolve(item, rest, f"{where}.{i}")
    elif isinstance(value, dict) and head in value:
        yield from _resolve(value[head], rest, f"{where}.{head}" if where else head)


def references(resource: Resource) -> list[Reference]:
    """Every other resource ``resource`` names, in the order of ``KINDS[kind].references`` then list order.

    >>> references(route)  # doctest: +SKIP
    [Reference(kind='ModelDeployment', id='income-v1', field='spec.modelDeployments.0.mdName'), ...]
    """
    document = resource.model_dump(by_alias=True)
    found: list[Reference] = []
    for ref in KINDS[resource.kind].references:
        found += [Reference(ref.kind, value, path) for path, value in _resolve(document, ref.path.split("."), "")]
    return found


def _rule_for(kind: str, field: str) -> ReferenceField:
    for ref in KINDS[kind].references:
        if re.fullmatch(re.escape(ref.path).replace(r"\*", r"\d+"), field):
            return ref
    raise KeyError(field)  # pragma: no cover - fields come from references(), which uses the same table


def _packaging_problems(
    packaging: ModelPackaging, integration: PackagingIntegration, lookup: Callable[[str, str], Resource | None]
) -> dict[str, str]:
    """A packaging against its integration's schema: targets (names, required ones, connection types) and
    arguments (required names; unknown names when the schema says ``additionalProperties: false``; each given
    value against its property's ``type``, ``enum`` and ``const``)."""
    problems: dict[str, str] = {}
    schema = integration.spec.schema_
    known = {t.name: t for t in schema.targets}
    given = {t.name for t in packaging.spec.targets}
    for i, target in enumerate(packaging.spec.targets):
        if target.name not in known:
            problems[f"spec.targets.{i}.name"] = (
                f"{integration.id!r} has no target {target.name!r}; its targets: {', '.join(known) or 'none'}"
            )
            continue
        types = known[target.name].connection_types
        connection = lookup("Connection", target.connection_name)
        if isinstance(connection, Connection) and connection.spec.type not in types:
            problems[f"spec.targets.{i}.connectionName"] = (
                f"the connection {target.connection_name!r} is of type {connection.spec.type}; "
                f"the target {target.name!r} takes {', '.join(types)}"
            )
    for name, target_schema in known.items():
        if target_schema.required and name not in given and target_schema.default is None:
            problems["spec.targets"] = f"the target {name!r} is required by {integration.id!r}"
    arguments = schema.arguments
    for name in arguments.get("required", []):
        if name not in packaging.spec.arguments:
            problems[f"spec.arguments.{name}"] = f"required by {integration.id!r}"
    properties = arguments.get("properties", {})
    for name, value in packaging.spec.arguments.items():
        if name not in properties:
            if arguments.get("additionalProperties") is False:
                problems[f"spec.arguments.{name}"] = f"{integration.id!r} takes no argument {name!r}"
            continue
        problem = _value_problem(value, properties[name])
        if problem is not None:
            problems[f"spec.arguments.{name}"] = f"{problem} (the schema of {integration.id!r})"
    return problems


_JSON_TYPES: Mapping[str, Callable[[Any], bool]] = MappingProxyType({
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
    "null": lambda v: v is None,
})  # fmt: skip


def _value_problem(value: Any, schema: Mapping[str, Any]) -> str | None:
    """Why ``value`` does not fit the JSON Schema ``schema`` by its ``type``, ``enum``, ``const`` and ``pattern``
    (the keywords an integration's arguments use to name their choices and shapes); None when it fits."""
    types = schema.get("type")
    names = [types] if isinstance(types, str) else list(types) if isinstance(types, list) else []
    known = [t for t in names if t in _JSON_TYPES]
    if known and not any(_JSON_TYPES[t](value) for t in known):
        return f"{value!r} is not of type {' or '.join(known)}"
    choices = schema.get("enum")
    if isinstance(choices, list) and value not in choices:
        return f"{value!r} is not one of {', '.join(repr(c) for c in choices)}"
    if "const" in schema and value != schema["const"]:
        return f"{value!r} is not {schema['const']!r}"
    pattern = schema.get("pattern")
    if isinstance(value, str) and isinstance(pattern, str) and re.search(pattern, value) is None:
        hint = schema.get("description")
        return f"{value!r} does not match {pattern!r}" + (f": {hint}" if isinstance(hint, str) else "")
    return None


def check_references(resource: Resource, lookup: Callable[[str, str], Resource | None]) -> dict[str, str]:
    """``{field path: problem}`` for each reference that ``lookup(kind, id)`` cannot find or that does not fit
    (a Connection of the wrong type, a packaging target its integration does not have). Empty when all is well.

    The API raises ``InvalidInputError.for_fields(problems)`` when the result is not empty.
    """
    problems: dict[str, str] = {}
    integration: PackagingIntegration | None = None
    for ref in references(resource):
        target = lookup(ref.kind, ref.id)
        if target is None:
            problems[ref.field] = f"no {ref.kind} {ref.id!r}"
            continue
        rule = _rule_for(resource.kind, ref.field)
        if isinstance(target, Connection) and rule.connection_types and target.spec.type not in rule.connection_types:
            problems[ref.field] = (
                f"the connection {ref.id!r} is of type {target.spec.type}; this field takes "
                + ", ".join(rule.connection_types)
            )
        if isinstance(target, PackagingIntegration):
            integration = target
    if isinstance(resource, ModelPackaging) and integration is not None:
        problems.update(_packaging_problems(resource, integration, lookup))
    return problems

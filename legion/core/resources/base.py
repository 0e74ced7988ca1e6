"""Building blocks every resource kind shares: the wire model, ids, labels, quantities, paths and the envelope.

Field-level rules live in annotated types (``ResourceId``, ``Quantity``, ``RelativePath``...), so a bad value is
reported at its own dotted path. Rules that span fields run in a model's ``after`` validator and report through
``raise_problems``, which names each field itself (``maxReplicas``, not the whole spec).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from datetime import date, datetime
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

from legion.core.quantities import QUANTITY, parse_quantity

ID_MAX_LENGTH: Final = 63
_ID: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
Loc = tuple[str | int, ...]


class WireModel(BaseModel):
    """Base of every spec, status and envelope: camelCase on the wire, snake_case in Python, unknown fields refused.

    Numbers are accepted where text is expected (``version: 1.0``, ``cpu: 2``), because YAML users write them so.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        populate_by_name=True,
        extra="forbid",
        frozen=True,
        coerce_numbers_to_str=True,
    )


def raise_problems(title: str, problems: Iterable[tuple[Loc, str]]) -> None:
    """Raise one ``ValidationError`` naming each ``(location, reason)``; the location is relative to the model.

    Called from ``after`` validators, so pydantic nests the locations under the model's own path and merges them
    with the errors of sibling fields.
    """
    details = [
        InitErrorDetails(type=PydanticCustomError("invalid", "{reason}", {"reason": why}), loc=loc, input=None)
        for loc, why in problems
    ]
    if details:
        raise ValidationError.from_exception_data(title, details)


def fill(model: BaseModel, name: str, value: object) -> None:
    """Set a computed default on a frozen model during its own validation (and only then)."""
    model.__dict__[name] = value


def is_valid_id(text: str) -> bool:
    """Whether ``text`` is a Kubernetes DNS-1123 label: ids become process, service and object names."""
    return len(text) <= ID_MAX_LENGTH and _ID.fullmatch(text) is not None


def _check_id(value: str) -> str:
    if not is_valid_id(value):
        raise ValueError(
            f"{value[:80]!r} is not a valid id: use lowercase letters, digits and '-', "
            f"start and end with a letter or digit, at most {ID_MAX_LENGTH} characters"
        )
    return value


def check_env_name(value: str) -> str:
    """``value`` if it is a portable environment variable name, else ``ValueError`` saying why."""
    if not _ENV_NAME.fullmatch(value):
        raise ValueError(f"{value[:80]!r} is not an environment variable name (letters, digits and '_')")
    return value


def _check_model_name(value: str) -> str:
    if len(value) > 253 or not _MODEL_NAME.fullmatch(value):
        raise ValueError(
            f"{value[:80]!r} cannot be used in a URL path: use letters, digits, '.', '_', '+' and '-', "
            "starting with a letter or digit, at most 253 characters"
        )
    return value


def _check_relative_path(value: str) -> str:
    if value.startswith(("/", "\\")) or re.match(r"[A-Za-z]:[/\\]", value):
        raise ValueError(f"{value[:80]!r} must be a relative path")
    if ".." in re.split(r"[/\\]", value):
        raise ValueError(f"{value[:80]!r} must not climb out of its directory ('..')")
    return value


def _check_no_space(value: str) -> str:
    if any(c.isspace() for c in value):
        raise ValueError(f"{value[:80]!r} must not contain whitespace")
    return value


def _check_quantity(value: str) -> str:
    parse_quantity(value)
    return value


def _states(**schema: JsonValue) -> Any:
    """What a validator checks, stated in the JSON Schema too (the OpenAPI document); validation stays the
    validator's, with its message."""
    extra: dict[str, JsonValue] = dict(schema)
    return Field(json_schema_extra=extra)


Text = Annotated[str, StringConstraints(min_length=1)]
ResourceId = Annotated[
    str, AfterValidator(_check_id), _states(pattern=f"^{_ID.pattern}$", minLength=1, maxLength=ID_MAX_LENGTH)
]
EnvName = Annotated[str, AfterValidator(check_env_name), _states(pattern=f"^{_ENV_NAME.pattern}$")]
ModelName = Annotated[
    str, AfterValidator(_check_model_name), _states(pattern=f"^{_MODEL_NAME.pattern}$", maxLength=253)
]
RelativePath = Annotated[
    str,
    StringConstraints(min_length=1),
    AfterValidator(_check_relative_path),
    _states(pattern=r"^(?![/\\]|[A-Za-z]:[/\\])(?!(.*[/\\])?\.\.([/\\]|$))"),
]
Image = Annotated[str, StringConstraints(min_length=1), AfterValidator(_check_no_space), _states(pattern=r"^\S+$")]
Quantity = Annotated[str, AfterValidator(_check_quantity), _states(pattern=f"^{QUANTITY.pattern}$")]


def _json_value(value: object, where: str) -> object:
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"{where}: {value} is not a finite number")
        return float(value)
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): _json_value(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_value(v, f"{where}.{i}") for i, v in enumerate(value)]
    raise ValueError(f"{where}: a {type(value).__name__} is not a JSON value")


def _json_object(value: dict[str, Any]) -> dict[str, Any]:
    return {str(k): _json_value(v, str(k)) for k, v in value.items()}


JsonObject = Annotated[dict[str, Any], AfterValidator(_json_object)]
"""A free-form JSON object (packaging arguments, JSON Schemas); YAML dates become ISO strings."""


class ResourceList(WireModel):
    """Amounts of compute, as Kubernetes quantities: ``cpu: 500m``, ``memory: 1Gi``, ``gpu: 1``."""

    cpu: Quantity | None = None
    memory: Quantity | None = None
    gpu: Quantity | None = None

    @model_validator(mode="after")
    def _whole_gpus(self) -> ResourceList:
        if self.gpu is not None and (gpus := parse_quantity(self.gpu)) != gpus.to_integral_value():
            raise_problems("ResourceList", [(("gpu",), f"{self.gpu!r} is not a whole number of GPUs")])
        return self


DEFAULT_LIMITS: Final = {"cpu": "256m", "memory": "256Mi"}
"""What a job or replica may use when its spec does not say: Legion's defaults (Kubernetes would apply them too)."""
DEFAULT_REQUESTS: Final = {"cpu": "128m", "memory": "128Mi"}
"""What a job or replica is guaranteed when its spec does not say (never more than its limit)."""


class ResourceRequirements(WireModel):
    """``limits`` (the most a job or replica may use) and ``requests`` (what it is guaranteed), as Kubernetes
    quantities. What is not given is filled in on validation, so the stored spec (and ``legion get -o yaml``) shows
    the values in force, as Kubernetes' defaulting does: a missing limit is ``DEFAULT_LIMITS`` (raised to the
    request when one is given above it), a missing request is ``DEFAULT_REQUESTS`` (lowered to the limit). GPUs
    have no default.

        >>> ResourceRequirements(limits={"memory": "64Mi"}).requests.memory
        '64Mi'
    """

    limits: ResourceList | None = None
    requests: ResourceList | None = None

    @model_validator(mode="after")
    def _defaults_and_requests_within_limits(self) -> ResourceRequirements:
        limits, requests = self.limits or ResourceList(), self.requests or ResourceList()
        problems: list[tuple[Loc, str]] = []
        for name in ("cpu", "memory", "gpu"):
            limit, request = getattr(limits, name), getattr(requests, name)
            if limit is not None and request is not None and parse_quantity(request) > parse_quantity(limit):
                problems.append((("requests", name), f"{request} is more than the limit {limit}"))
        raise_problems("ResourceRequirements", problems)
        filled_limits, filled_requests = limits.model_dump(exclude_none=True), requests.model_dump(exclude_none=True)
        for name, default in DEFAULT_LIMITS.items():
            request = filled_requests.get(name)
            if name not in filled_limits:
                above = request is not None and parse_quantity(request) > parse_quantity(default)
                filled_limits[name] = request if above else default
            if request is None:
                limit = filled_limits[name]
                lower = parse_quantity(limit) < parse_quantity(DEFAULT_REQUESTS[name])
                filled_requests[name] = limit if lower else DEFAULT_REQUESTS[name]
        fill(self, "limits", limits.model_copy(update=filled_limits))
        fill(self, "requests", requests.model_copy(update=filled_requests))
        return self


class EnforcedLimits(WireModel):
    """How a runtime holds a job or replica to its ``resources.limits`` (a status field): the limits it enforces,
    by which mechanism, and what it does not enforce and why. ``legion get -o yaml`` shows it, e.g.::

        enforcedLimits: {mechanism: cgroup v1, memory: 256Mi, cpu: 256m,
                         detail: "memory.limit_in_bytes=268435456, cpu.cfs_quota_us=25600 per 100000 us, ..."}
    """

    mechanism: str = Field(description="e.g. 'cgroup v2', 'cgroup v1', or 'none' when nothing is enforced")
    cpu: Quantity | None = Field(default=None, description="the CPU limit enforced; absent when it is not")
    memory: Quantity | None = Field(default=None, description="the memory limit enforced; absent when it is not")
    detail: str | None = Field(default=None, description="the values written, and why something is not enforced")


def _no_null(value: object) -> object:
    return {} if value is None else value


Resources = Annotated[ResourceRequirements, BeforeValidator(_no_null)]
"""A spec's ``resources``: always there, with the defaults filled in (``resources: null`` means the defaults too)."""


def _label_problem(key: str, value: str) -> str | None:
    prefix, _, name = key.rpartition("/")
    if prefix and (len(prefix) > 253 or not _DNS_SUBDOMAIN.fullmatch(prefix)):
        return f"the key prefix {prefix[:80]!r} is not a DNS subdomain"
    if len(name) > 63 or not _LABEL_NAME.fullmatch(name):
        return f"the key {key[:80]!r} is not a label name (letters, digits, '-', '_', '.'; at most 63)"
    if value and (len(value) > 63 or not _LABEL_NAME.fullmatch(value)):
        return f"the value {value[:80]!r} is not a label value (letters, digits, '-', '_', '.'; at most 63)"
    return None


class Metadata(WireModel):
    """Labels (Kubernetes label syntax, so they can be applied to the objects a runtime creates) and the times the
    platform created and last changed the resource; clients' times are ignored."""

    labels: dict[str, str] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    generation: int | None = None
    """Moves each time the spec changes; a status's ``observedGeneration`` says which spec it describes."""

    @model_validator(mode="after")
    def _label_syntax(self) -> Metadata:
        problems = [(("labels", k), why) for k, v in self.labels.items() if (why := _label_problem(k, v))]
        raise_problems("Metadata", problems)
        return self


class ResourceBase(WireModel):
    """The envelope ``{kind, id, metadata, spec, status}``; each kind narrows ``kind`` and adds its spec and status."""

    kind: str
    id: ResourceId
    metadata: Metadata = Field(default_factory=Metadata)


class NoStatus(WireModel):
    """The status of kinds the platform does not act on (connections, integrations): always empty."""

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
from decimal import Decimal
from typing import Annotated, Any, Final

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    StringConstraints,
    ValidationError,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic_core import InitErrorDetails, PydanticCustomError

ID_MAX_LENGTH: Final = 63
_ID: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_LABEL_NAME: Final = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_DNS_SUBDOMAIN: Final = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_ENV_NAME: Final = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_MODEL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]*")
_QUANTITY: Final = re.compile(
    r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE](?P<exponent>[+-]?[0-9]+)|(?P<suffix>[KMGTPE]i|[mkMGTPE]))?"
)
_QUANTITY_DIGITS: Final = 30
_SUFFIXES: Final[dict[str, Decimal]] = {
    "": Decimal(1),
    "m": Decimal("0.001"),
    **{s: Decimal(1000) ** (i + 1) for i, s in enumerate("kMGTPE")},
    **{s + "i": Decimal(1024) ** (i + 1) for i, s in enumerate("KMGTPE")},
}

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


def parse_quantity(text: str) -> Decimal:
    """The value of a Kubernetes quantity: ``"500m"`` → 0.5, ``"1Gi"`` → 1073741824, ``"1e3"`` → 1000.

    >>> parse_quantity("256Mi")
    Decimal('268435456')
    """
    match = _QUANTITY.fullmatch(text)
    if match is None:
        raise ValueError(
            f"{text[:80]!r} is not a quantity: write a number with an optional suffix, e.g. 500m, 2, 1.5, 256Mi, 1Gi"
        )
    number, exponent = match["number"], int(match["exponent"] or 0)
    if len(number) > _QUANTITY_DIGITS or abs(exponent) > _QUANTITY_DIGITS:
        raise ValueError(f"{text[:80]!r} is out of range for a quantity")
    return Decimal(number).scaleb(exponent) * _SUFFIXES[match["suffix"] or ""]


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
Quantity = Annotated[str, AfterValidator(_check_quantity), _states(pattern=f"^{_QUANTITY.pattern}$")]


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


class ResourceRequirements(WireModel):
    """``limits`` (the most a job or replica may use) and ``requests`` (what it is guaranteed)."""

    limits: ResourceList | None = None
    requests: ResourceList | None = None

    @model_validator(mode="after")
    def _requests_within_limits(self) -> ResourceRequirements:
        if self.limits is None or self.requests is None:
            return self
        problems: list[tuple[Loc, str]] = []
        for name in ("cpu", "memory", "gpu"):
            limit, request = getattr(self.limits, name), getattr(self.requests, name)
            if limit is not None and request is not None and parse_quantity(request) > parse_quantity(limit):
                problems.append((("requests", name), f"{request} is more than the limit {limit}"))
        raise_problems("ResourceRequirements", problems)
        return self


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

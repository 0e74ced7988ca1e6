"""Resources as documents: read YAML/JSON text, turn a mapping into a typed resource, and back.

The management API (request bodies), its storage (rows), the CLI (``apply -f``, ``get -o yaml``) and YAML files all
go through ``parse_resource`` and ``to_document``, so a resource reads and prints the same everywhere and every
surface reports the same errors: ``InvalidInputError`` naming each bad field by its dotted wire path
(``spec.modelDeployments.1.weight``), ``PayloadTooLargeError`` naming an oversized field.

YAML numbers that land in text fields keep the text the user wrote (``version: 1.10`` stays ``"1.10"``, not 1.1).
"""

from __future__ import annotations

import contextlib
import difflib
import json
import re
import types
from collections.abc import Mapping
from typing import Any, Final, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails

from legion.core.errors import InvalidInputError, LegionError, PayloadTooLargeError
from legion.core.resources.kinds import KINDS, KindInfo, Resource, find_kind

MAX_FIELD_BYTES: Final = 1 << 20
"""The most one string (a value or a key) of a resource may hold, in bytes of UTF-8."""
MAX_RESOURCE_BYTES: Final = 4 << 20
"""The most one resource may hold, in bytes (approximately: strings, plus 8 for each value)."""
MAX_TEXT_BYTES: Final = 64 << 20
"""The most text ``load_documents`` reads, in characters, before parsing it at all."""
MAX_DEPTH: Final = 32
"""How deeply a resource may nest mappings and lists."""

_JSON_START: Final = re.compile(r'[\[\s]*\{\s*"')  # a JSON object, alone or in a list: a quoted key first
_PLATFORM_METADATA: Final = ("createdAt", "created_at", "updatedAt", "updated_at", "generation")


class _SourcedFloat(float):
    """A float that remembers how it was written, so a text field gets ``"1.10"`` rather than ``"1.1"``."""

    source: str

    def __new__(cls, value: float, source: str) -> _SourcedFloat:
        number = super().__new__(cls, value)
        number.source = source
        return number

    def __str__(self) -> str:
        return self.source


def _yaml_float(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> float:
    return _SourcedFloat(loader.construct_yaml_float(node), str(loader.construct_scalar(node)))


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]  # the C loader when built
    pass


_Loader.add_constructor("tag:yaml.org,2002:float", _yaml_float)


def _json_float(text: str) -> float:
    return _SourcedFloat(float(text), text)


def _labelled(error: LegionError, label: str) -> LegionError:
    return type(error)(f"{label}: {error.detail}", fields=error.fields)


def _parse_text(text: str) -> list[Any]:
    stripped = text.lstrip()
    if stripped[:1] in ("[", "{"):
        try:
            return [json.loads(text, parse_float=_json_float)]
        except json.JSONDecodeError as exc:
            if _JSON_START.match(stripped):
                raise InvalidInputError(f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}") from None
            # YAML's flow style starts so too ({kind: Connection, ...}): read it as YAML
    try:
        return list(yaml.load_all(text, Loader=_Loader))  # _Loader is a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise InvalidInputError(f"invalid YAML{where}: {exc.problem or exc.context}") from None
    except yaml.YAMLError as exc:
        raise InvalidInputError(f"invalid YAML: {exc}") from None


def load_documents(text: str) -> list[dict[str, Any]]:
    """The resource mappings in ``text``, in file order: multi-document YAML, a JSON (or YAML) list, or one object.

    Empty documents are skipped; a document that is a list contributes its items. Each mapping passes
    ``check_size``. Raises ``InvalidInputError`` with the line and column of a syntax error.

    >>> [d["id"] for d in load_documents("kind: Connection\\nid: a\\n---\\nkind: Connection\\nid: b\\n")]
    ['a', 'b']
    """
    if len(text) > MAX_TEXT_BYTES:
        raise PayloadTooLargeError(f"the text is {len(text)} characters; at most {MAX_TEXT_BYTES} are read")
    if not text.strip():
        return []
    try:
        loaded = _parse_text(text)
    except RecursionError:
        raise InvalidInputError("the text nests too deeply to be a resource") from None
    documents: list[dict[str, Any]] = []
    single = len(loaded) == 1
    for n, document in enumerate(loaded, 1):
        items = list(enumerate(document, 1)) if isinstance(document, list) else [(0, document)]
        for m, item in items:
            label = ", ".join(([] if single else [f"document {n}"]) + ([f"item {m}"] if m else []))
            if item is None and not m:
                continue
            if not isinstance(item, dict):
                where = f"{label}: " if label else ""
                raise InvalidInputError(f"{where}a resource must be a mapping, not {_type_name(item)}")
            try:
                check_size(item)
            except LegionError as exc:
                raise (_labelled(exc, label) if label else exc) from None
            documents.append(item)
    return documents


def _type_name(value: object) -> str:
    return {type(None): "null", str: "a string", list: "a list", int: "a number", float: "a number"}.get(
        type(value), f"a {type(value).__name__}"
    )


def check_size(obj: object) -> None:
    """Refuse a resource with a string over ``MAX_FIELD_BYTES`` (naming its path), over ``MAX_RESOURCE_BYTES`` in
    all, or nested deeper than ``MAX_DEPTH``. Walks iteratively with a budget, so YAML alias bombs stop early."""
    total = 0
    stack: list[tuple[object, str, int]] = [(obj, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        total += 8
        if isinstance(value, str):
            total += _string_bytes(value, path)
        elif isinstance(value, Mapping | list | tuple):
            if depth >= MAX_DEPTH:
                raise InvalidInputError.for_fields({path: f"nested deeper than {MAX_DEPTH} levels"}, prefix="invalid")
            if isinstance(value, Mapping):
                pairs = [(f"{path}.{k}" if path else str(k), k, v) for k, v in value.items()]
                total += sum(_string_bytes(k, f"{p} (the key)") for p, k, _ in pairs if isinstance(k, str))
                stack += [(v, p, depth + 1) for p, _, v in reversed(pairs)]
            else:
                items = [(f"{path}.{i}" if path else str(i), v) for i, v in enumerate(value)]
                stack += [(v, p, depth + 1) for p, v in reversed(items)]
        if total > MAX_RESOURCE_BYTES:
            raise PayloadTooLargeError(f"the resource is over the {MAX_RESOURCE_BYTES}-byte limit")


def _string_bytes(text: str, path: str) -> int:
    if len(text) * 4 <= MAX_FIELD_BYTES:
        return len(text)
    size = len(text.encode("utf-8", "surrogatepass"))
    if size > MAX_FIELD_BYTES:
        why = f"{size} bytes; one field may hold at most {MAX_FIELD_BYTES}"
        raise PayloadTooLargeError.for_fields({path or "<resource>": why}, prefix="too large")
    return size


def _kind_of(obj: Mapping[str, Any], expected: str | None) -> KindInfo:
    known = ", ".join(KINDS)
    raw = obj.get("kind")
    want = find_kind(expected) if expected is not None else None
    if raw is None:
        if want is not None:
            return want
        raise InvalidInputError.for_fields({"kind": f"required: one of {known}"})
    if not isinstance(raw, str) or raw not in KINDS:
        hint = ""
        if isinstance(raw, str):
            with contextlib.suppress(InvalidInputError):
                hint = f" (did you mean {find_kind(raw).name}?)"
        why = f"unknown kind {str(raw)[:80]!r}{hint}; known kinds: {known}"
        raise InvalidInputError(why, fields={"kind": why})
    if want is not None and raw != want.name:
        raise InvalidInputError.for_fields({"kind": f"expected {want.name}, got {raw}"})
    return KINDS[raw]


def parse_resource(obj: Mapping[str, Any], *, kind: str | None = None, keep_status: bool = False) -> Resource:
    """The typed resource that ``obj`` (a wire mapping) describes, or one ``InvalidInputError`` naming every bad
    field by its dotted path.

    ``kind`` is what the caller expects (the API knows it from the URL): a document without ``kind`` gets it, one
    with another kind is refused. The platform owns ``status`` and the times in ``metadata``: they are dropped
    unless ``keep_status`` (storage reading its own rows, a client reading the API's answers).

    >>> parse_resource({"kind": "ModelRoute", "id": "income", "spec": {
    ...     "urlPrefix": "/income", "modelDeployments": [{"mdName": "income-v1"}]}}).spec.model_deployments[0].weight
    100
    """
    if not isinstance(obj, Mapping):
        raise InvalidInputError(f"a resource must be a mapping with kind, id and spec, not {_type_name(obj)}")
    check_size(obj)
    info = _kind_of(obj, kind)
    data = {**obj, "kind": info.name}
    if not keep_status:
        data.pop("status", None)
        if isinstance(data.get("metadata"), Mapping):
            data["metadata"] = {k: v for k, v in data["metadata"].items() if k not in _PLATFORM_METADATA}
    try:
        return info.model.model_validate(data)
    except ValidationError as exc:
        ident = data.get("id")
        name = f" {ident[:80]!r}" if isinstance(ident, str) and ident else ""
        raise InvalidInputError.for_fields(_problems(exc, info.model), prefix=f"invalid {info.name}{name}") from None


def to_document(resource: Resource) -> dict[str, Any]:
    """The wire form of ``resource`` for YAML and JSON output: camelCase, JSON types, and without the fields that
    are None or an empty list or mapping by default (so ``get -o yaml`` shows what matters).
    ``parse_resource(to_document(r), keep_status=True) == r``."""
    document = resource.model_dump(mode="json", by_alias=True, exclude_none=True)
    _drop_empty(resource, document)
    return document


def _drop_empty(model: BaseModel, document: dict[str, Any]) -> None:
    """Remove, bottom up, the optional fields of ``model`` whose dumped value is ``[]`` or ``{}``."""
    for name, field in type(model).model_fields.items():
        key = field.alias or name
        if key not in document:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            _drop_empty(value, document[key])
        elif isinstance(value, list):
            for item, dumped in zip(value, document[key], strict=True):
                if isinstance(item, BaseModel):
                    _drop_empty(item, dumped)
        if document[key] in ([], {}) and _empty_by_default(field):
            del document[key]


def _empty_by_default(field: FieldInfo) -> bool:
    """Whether leaving the field out reads back as the same empty value (``resources: {}`` does not: it is None)."""
    if field.is_required():
        return False
    default = field.get_default(call_default_factory=True)
    if isinstance(default, BaseModel):
        dumped = default.model_dump(mode="json", by_alias=True, exclude_none=True)
        _drop_empty(default, dumped)
        return dumped == {}
    return isinstance(default, list | dict) and not default


def _problems(exc: ValidationError, model: type[BaseModel]) -> dict[str, str]:
    problems: dict[str, str] = {}
    for error in exc.errors(include_url=False):
        path = ".".join(str(part) for part in error["loc"]) or "<resource>"
        why = _message(error, model)
        problems[path] = f"{problems[path]}; {why}" if path in problems else why
    return problems


def _message(error: ErrorDetails, model: type[BaseModel]) -> str:
    kind, message = error["type"], error["msg"]
    if kind == "missing":
        return "required"
    if kind == "extra_forbidden":
        name = str(error["loc"][-1])
        known = _fields_at(model, error["loc"][:-1])
        close = difflib.get_close_matches(name, known, n=1)
        if close:
            return f"unknown field; did you mean {close[0]!r}?"
        return f"unknown field; known fields: {', '.join(known)}" if known else "unknown field"
    if kind in ("model_type", "model_attributes_type", "dict_type"):
        return "must be a mapping"
    return message.removeprefix("Value error, ")


def _unwrap(annotation: Any) -> Any:
    if get_origin(annotation) in (Union, types.UnionType):
        members = [a for a in get_args(annotation) if a is not type(None)]
        return members[0] if len(members) == 1 else annotation
    return annotation


def _fields_at(model: type[BaseModel], loc: tuple[int | str, ...]) -> list[str]:
    """The wire names of the fields of the model found at ``loc`` under ``model``; [] when there is none."""
    current: Any = model
    for part in loc:
        current = _unwrap(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            fields = {(f.alias or n): f for n, f in current.model_fields.items()}
            if part not in fields:
                return []
            current = fields[str(part)].annotation
        elif get_origin(current) is list and isinstance(part, int):
            current = get_args(current)[0]
        elif get_origin(current) is dict and isinstance(part, str):
            current = get_args(current)[1]
        else:
            return []
    current = _unwrap(current)
    if isinstance(current, type) and issubclass(current, BaseModel):
        return [f.alias or n for n, f in current.model_fields.items()]
    return []

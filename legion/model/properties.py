"""Runtime-tunable model properties (``define_property`` / ``get_property``), and how a value is checked.

A property is a named value that the model's code reads on every call and an operator can change while the
model is served, e.g. a decision threshold. One process serves one model, so the store is process-wide; a
property keeps the type of its initial value.

``check_values(defined, values)`` is the one rule for what a value may be, used by this store, by the management
API before it stores a deployment's properties and by ``legion serve`` when it starts: all or nothing, every bad
name or value named. On a platform a deployment's properties are set through the management API
(``legion model property set``) and delivered to every replica; ``PUT /api/model/properties`` of one server is
for a ``legion serve`` of one's own.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping
from typing import Any

from legion.core.errors import InvalidInputError, NotFoundError

_lock = threading.Lock()
_values: dict[str, Any] = {}


def define_property(name: str, initial: Any) -> None:
    """Declare a property and its initial value (at export time, and again when a model loads)."""
    with _lock:
        _values[name] = initial


def get_property(name: str) -> Any:
    """The current value of a property; call it inside the model's functions.

    >>> define_property("threshold", 0.5); get_property("threshold")
    0.5
    """
    try:
        return _values[name]
    except KeyError:
        raise NotFoundError(f"no model property {name!r}; defined: {', '.join(sorted(_values)) or 'none'}") from None


def all_properties() -> dict[str, Any]:
    with _lock:
        return dict(_values)


def update_properties(changes: Mapping[str, Any]) -> dict[str, Any]:
    """Set several defined properties at once, coerced to each one's type; all or nothing."""
    with _lock:
        _values.update(check_values(_values, changes))
        return dict(_values)


def reset_properties(values: Mapping[str, Any]) -> None:
    with _lock:
        _values.clear()
        _values.update(values)


def check_values(defined: Mapping[str, Any], values: Mapping[str, Any], *, where: str = "") -> dict[str, Any]:
    """``values`` coerced to the types of the ``defined`` initial values; ``InvalidInputError`` naming every name
    that is not defined and every value that does not fit (``where`` prefixes the names, e.g. ``spec.properties.``).

    >>> check_values({"threshold": 0.5, "top": 3}, {"threshold": "0.7", "top": 5.0})
    {'threshold': 0.7, 'top': 5}
    """
    problems: dict[str, str] = {}
    coerced: dict[str, Any] = {}
    for name, value in values.items():
        if name not in defined:
            known = ", ".join(sorted(defined)) or "none"
            problems[f"{where}{name}"] = f"not a defined property (defined: {known})"
            continue
        try:
            coerced[name] = coerce_value(defined[name], value)
        except (TypeError, ValueError):
            problems[f"{where}{name}"] = f"{value!r} is not a {type(defined[name]).__name__}"
    if problems:
        raise InvalidInputError.for_fields(problems, prefix="cannot set properties")
    return coerced


def coerce_value(initial: Any, value: Any) -> Any:
    """``value`` as the type of ``initial`` (text such as ``"0.7"`` or ``"true"`` is read as a number or a
    boolean); ``TypeError`` or ``ValueError`` when it is not one. A property defined as ``None`` takes anything."""
    if initial is None:
        return value
    if value is None or isinstance(value, dict | list | tuple):
        raise TypeError("a property holds one value")
    if isinstance(initial, bool):
        return _boolean(value)
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(initial, int):
        return _integer(value)
    if isinstance(initial, float):
        number = float(value)
        if not math.isfinite(number):
            raise ValueError("not a finite number")
        return number
    if isinstance(initial, str):
        return str(value)
    raise TypeError(f"properties of type {type(initial).__name__} are set only at export")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise TypeError("not a boolean")


def _integer(value: Any) -> int:
    if isinstance(value, int):
        return value
    number = float(value)
    if not number.is_integer():
        raise ValueError("not an integer")
    return int(number)

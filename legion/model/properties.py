"""Runtime-tunable model properties (``define_property`` / ``get_property``).

A property is a named value that the model's code reads on every call and an operator can change while the
model is served (``PUT /api/model/properties``), e.g. a decision threshold. One process serves one model, so
the store is process-wide; a property keeps the type of its initial value.
"""

from __future__ import annotations

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
        problems: dict[str, str] = {}
        coerced: dict[str, Any] = {}
        for name, value in changes.items():
            if name not in _values:
                problems[name] = "not a defined property"
                continue
            try:
                coerced[name] = _coerce(_values[name], value)
            except (TypeError, ValueError):
                problems[name] = f"{value!r} is not a {type(_values[name]).__name__}"
        if problems:
            raise InvalidInputError.for_fields(problems, prefix="cannot set properties")
        _values.update(coerced)
        return dict(_values)


def reset_properties(values: Mapping[str, Any]) -> None:
    with _lock:
        _values.clear()
        _values.update(values)


def _coerce(initial: Any, value: Any) -> Any:
    if initial is None:
        return value
    if isinstance(initial, bool):
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false"):
            return value.lower() == "true"
        raise TypeError("not a boolean")
    if isinstance(value, bool):
        raise TypeError("booleans are not numbers here")
    if isinstance(initial, int):
        number = float(value)
        if not number.is_integer():
            raise ValueError("not an integer")
        return int(number)
    if isinstance(initial, float):
        return float(value)
    if isinstance(initial, str):
        return str(value)
    raise TypeError(f"properties of type {type(initial).__name__} are set only at export")

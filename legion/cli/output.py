"""How the CLI prints objects: a table for people; YAML, JSON or a ``jsonpath=`` expression for scripts.

``jsonpath`` takes the kubectl-style subset people use: ``{.spec.image}``, ``{.items[*].id}``, ``{.status.state}``
(an ``items`` list stands for the objects of a listing).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import yaml
from rich.console import Console
from rich.table import Table

from legion.core.errors import InvalidInputError

_STEP = re.compile(r"\.([A-Za-z0-9_\-]+)|\[(\*|\d+)\]")


def jsonpath(data: Any, expression: str) -> list[Any]:
    """Values at ``expression`` (``{.a.b[0].c}`` or ``.a.b[*]``)."""
    path = expression.strip()
    if path.startswith("{") and path.endswith("}"):
        path = path[1:-1]
    if path in ("", "."):
        return [data]
    position = 0
    values = [data]
    for match in _STEP.finditer(path):
        if match.start() != position:
            raise InvalidInputError(f"cannot read jsonpath {expression!r} at {path[position:]!r}")
        position = match.end()
        key, index = match.groups()
        next_values: list[Any] = []
        for value in values:
            if key is not None and isinstance(value, dict) and key in value:
                next_values.append(value[key])
            elif index == "*" and isinstance(value, list):
                next_values.extend(value)
            elif index is not None and index != "*" and isinstance(value, list) and int(index) < len(value):
                next_values.append(value[int(index)])
        values = next_values
    if position != len(path):
        raise InvalidInputError(f"cannot read jsonpath {expression!r} at {path[position:]!r}")
    return values


def render(
    objects: Sequence[dict[str, Any]],
    fmt: str,
    columns: Sequence[tuple[str, Callable[[dict[str, Any]], Any]]],
    echo: Callable[[str], None],
    *,
    single: bool = False,
) -> None:
    """Print ``objects`` as a table (``columns``), ``yaml``, ``json`` or ``jsonpath=...``."""
    data: Any = objects[0] if single and objects else list(objects)
    if fmt == "json":
        echo(json.dumps(data, indent=2, sort_keys=False))
    elif fmt == "yaml":
        if single or not objects:
            echo(yaml.safe_dump(data, sort_keys=False).rstrip())
        else:
            echo(yaml.safe_dump_all(objects, sort_keys=False).rstrip())
    elif fmt.startswith("jsonpath="):
        root = data if single else {"items": list(objects)}
        echo(" ".join(_plain(v) for v in jsonpath(root, fmt.removeprefix("jsonpath="))))
    elif fmt == "table":
        table = Table(box=None, pad_edge=False, header_style="bold")
        for title, _ in columns:
            table.add_column(title)
        for obj in objects:
            table.add_row(*(_plain(get(obj)) for _, get in columns))
        console = Console(width=200, force_terminal=False, color_system=None)
        with console.capture() as captured:
            console.print(table)
        echo(captured.get().rstrip())
    else:
        raise InvalidInputError(f"unknown output format {fmt!r}; use table, yaml, json or jsonpath=EXPR")


def _plain(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)

"""Which installed distributions a saved model needs, and whether this environment still has them.

``detect`` reads the module references out of the pickled artifacts (what unpickling will import) and pins each
one's distribution at its installed version. ``check`` compares pins with what is installed: a different
major.minor, a missing package or another Python minor is a problem (the loader warns, and names it as the
likely cause if the model then fails); a different patch release is only a warning.
"""

from __future__ import annotations

import pickletools
import re
import sys
from collections.abc import Iterable, Mapping
from functools import cache
from importlib import metadata

_TEXT_OPCODES = frozenset({"SHORT_BINUNICODE", "BINUNICODE", "UNICODE"})
_MODULE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


@cache
def _distributions_of() -> Mapping[str, list[str]]:
    return metadata.packages_distributions()


def modules_in_pickle(data: bytes) -> set[str]:
    """Top-level module names referenced by a pickle (GLOBAL opcodes and the strings STACK_GLOBAL uses)."""
    found: set[str] = set()
    for opcode, arg, _ in pickletools.genops(data):
        if opcode.name == "GLOBAL" and isinstance(arg, str):
            found.add(arg.split(" ", 1)[0].split(".", 1)[0])
        elif opcode.name in _TEXT_OPCODES and isinstance(arg, str) and _MODULE.match(arg):
            found.add(arg.split(".", 1)[0])
    return found


def pins_for(modules: Iterable[str]) -> dict[str, str]:
    """``{distribution: version}`` for the modules that come from an installed distribution (not stdlib)."""
    pins: dict[str, str] = {}
    distributions = _distributions_of()
    for module in modules:
        if module in sys.stdlib_module_names:
            continue
        for dist in distributions.get(module, []):
            try:
                pins[dist] = metadata.version(dist)
            except metadata.PackageNotFoundError:
                continue
    return dict(sorted(pins.items(), key=lambda kv: kv[0].lower()))


def is_installed_module(module_name: str) -> bool:
    """True for stdlib and installed distributions: code that unpickling can import by reference."""
    top = module_name.split(".", 1)[0]
    return top in sys.stdlib_module_names or top in _distributions_of()


def python_version() -> str:
    return ".".join(str(p) for p in sys.version_info[:3])


def _major_minor(version: str) -> tuple[str, ...]:
    return tuple(version.split(".")[:2])


# Distributions that provide the same modules under another name (MLflow pins ``mlflow``; ``mlflow-skinny`` serves).
_ALTERNATIVES = {"mlflow": ("mlflow-skinny",)}


def _installed(dist: str) -> str | None:
    for name in (dist, *_ALTERNATIVES.get(dist.lower(), ())):
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return None


def check(python: str, requirements: Mapping[str, str]) -> tuple[list[str], list[str]]:
    """``(problems, warnings)`` for running a model saved under ``python`` with ``requirements`` here."""
    problems: list[str] = []
    warnings: list[str] = []
    here = python_version()
    if _major_minor(python) != _major_minor(here):
        problems.append(f"python: the model was saved with {python}, this is {here}")
    for dist, pinned in requirements.items():
        installed = _installed(dist)
        if installed is None:
            problems.append(f"{dist}: {pinned} is required but not installed")
            continue
        if installed == pinned:
            continue
        if _major_minor(installed) != _major_minor(pinned):
            problems.append(f"{dist}: the model needs {pinned}, {installed} is installed")
        else:
            warnings.append(f"{dist}: the model was saved with {pinned}, {installed} is installed")
    return problems, warnings

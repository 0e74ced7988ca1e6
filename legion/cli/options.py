"""``settings_from_options``: the one way a command that starts a service turns its options into settings.

Only the options a user actually gave (on the command line, not click's defaults) become settings values, so the
environment (``LEGION_PORT``, ``LEGION_GATEWAY_*``, ...) and then the settings' own defaults fill the rest: an
option's default is shown in ``--help`` but never overrides a variable. A value the settings refuse, from an option
or from a variable, is reported as ``Error: invalid option: <field>: <why>`` with exit code 2, never a traceback.

    settings = settings_from_options(ServerSettings, given_options(ctx, rename={"max_batch_wait": "max_batch_wait_s"}))
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

import click
from click.core import ParameterSource
from pydantic import BaseModel, ValidationError

from legion.core.errors import InvalidInputError
from legion.core.settings import nest

T = TypeVar("T", bound=BaseModel)

SERVICE_LOGGING = ("log_level", "log_format")
"""Keys of the ``legion`` group's context object that a service's settings take (given as ``-v``/``--log-format``)."""


def given_options(ctx: click.Context, rename: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The options of ``ctx``'s command the user gave, keyed by settings field (``rename`` maps option names to
    field names; a dotted name such as ``auth.enabled`` is a field of a nested group)."""
    rename = rename or {}
    return {
        rename.get(name, name): value
        for name, value in ctx.params.items()
        if ctx.get_parameter_source(name) not in (None, ParameterSource.DEFAULT)
    }


def service_logging(obj: Mapping[str, Any] | None) -> dict[str, Any]:
    """The log settings the ``legion`` group was given (``-v``, ``--log-format``), for a service's settings."""
    return {key: value for key, value in (obj or {}).items() if key in SERVICE_LOGGING}


def settings_from_options(cls: type[T], values: Mapping[str, Any]) -> T:
    """``cls`` built from ``values`` (dotted names nest) with the environment filling the rest; a refused value is
    an ``InvalidInputError`` (exit code 2) naming every bad field."""
    try:
        return cls(**nest(values))
    except ValidationError as exc:
        problems = {".".join(str(p) for p in error["loc"]): error["msg"] for error in exc.errors()}
        raise InvalidInputError.for_fields(problems, prefix="invalid option") from None

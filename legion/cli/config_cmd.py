"""``legion config``: show, switch and edit the CLI's contexts (the file ``legion.cli.config`` reads).

``view`` lists every context with its API URL, its gateway URL and whether it has a token (masked: the file is
0600 for a reason, and a screen is not); ``use-context NAME`` switches; ``get KEY`` and ``set KEY VALUE`` read and
change one key of the current context (or of ``--context NAME``), as ``git config`` does for a repository:

    legion config set gateway http://127.0.0.1:5090
    legion config get token        # the token itself, for a script: TOKEN=$(legion config get token)

A key this command does not know is refused naming it and the known ones, so a typo never writes a key that no
command reads.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from legion.cli.config import ClientSettings, known, read_config, write_config
from legion.cli.output import render
from legion.core.errors import InvalidInputError, NotFoundError

KEYS = {
    "url": "the management API's URL",
    "gateway": "the gateway's URL, for model calls",
    "token": "the API token (`legion config set token -` reads it from standard input)",
}
"""What ``get`` and ``set`` take: a context's keys, named as in the file."""
URL_KEYS = ("url", "gateway")
MASK = "*****"


@click.group("config")
def config() -> None:
    """Show, switch and edit the CLI's contexts (~/.legion/config.yaml, or $LEGION_CONFIG_FILE)."""


@config.command("view")
@click.option("-o", "--output", "fmt", default="table", show_default=True, help="table, yaml, json or jsonpath=EXPR.")
def config_view(fmt: str) -> None:
    """Print the contexts: API URL, gateway URL and token (masked); * marks the current one."""
    data = read_config(ClientSettings().config_file)
    rows = [
        {
            "name": name,
            "current": name == data.get("current"),
            "url": context.get("url"),
            "gateway": context.get("gateway"),
            "token": MASK if context.get("token") else None,
            **({"dataDir": context["dataDir"]} if context.get("dataDir") else {}),
        }
        for name, context in sorted(data["contexts"].items())
        if isinstance(context, dict)
    ]
    columns = [
        ("CURRENT", lambda row: "*" if row["current"] else ""),
        ("NAME", lambda row: row["name"]),
        ("URL", lambda row: row["url"]),
        ("GATEWAY", lambda row: row["gateway"]),
        ("TOKEN", lambda row: row["token"] or "none"),
    ]
    render(rows, fmt, columns, click.echo)


@config.command("use-context")
@click.argument("name")
def use_context(name: str) -> None:
    """Make NAME the current context."""
    path = ClientSettings().config_file
    data = read_config(path)
    if name not in data["contexts"]:
        raise InvalidInputError(f"no context {name!r}; known: {known(data)}")
    data["current"] = name
    write_config(path, data)
    click.echo(f"using context {name!r}")


config.add_command(use_context, "use")  # the earlier name, kept for scripts


context_option = click.option("--context", "name", default=None, help="Another context than the current one.")


@config.command("get")
@click.argument("key")
@context_option
def config_get(key: str, name: str | None) -> None:
    """Print KEY of the current context: url, gateway or token."""
    _check(key)
    _, context_name, context = _context(name)
    value = context.get(key)
    if not value:
        raise NotFoundError(f"context {context_name!r} has no {key}")
    click.echo(value)


@config.command("set")
@click.argument("key")
@click.argument("value")
@context_option
def config_set(key: str, value: str, name: str | None) -> None:
    """Set KEY of the current context to VALUE: url, gateway or token (- reads it from standard input)."""
    _check(key)
    if value == "-":
        value = sys.stdin.readline().strip()
    if key in URL_KEYS and not value.startswith(("http://", "https://")):
        raise InvalidInputError(f"{key} must be an http:// or https:// URL, not {value!r}", fields={key: "not a URL"})
    if not value:
        raise InvalidInputError(f"{key} may not be empty", fields={key: "empty"})
    data, context_name, context = _context(name)
    context[key] = value.rstrip("/") if key in URL_KEYS else value
    write_config(ClientSettings().config_file, data)
    click.echo(f"context {context_name!r}: {key} set")


def _check(key: str) -> None:
    if key not in KEYS:
        choices = ", ".join(f"{name} ({what})" for name, what in KEYS.items())
        raise InvalidInputError(f"unknown config key {key!r}; known keys: {choices}", fields={key: "unknown key"})


def _context(name: str | None) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The file's data, the context's name and its mapping (in that data): ``name``, ``$LEGION_CONTEXT`` or the
    current one."""
    settings = ClientSettings()
    data = read_config(settings.config_file)
    chosen = name or settings.context or data.get("current")
    if not chosen:
        raise NotFoundError(
            f"no current context in {settings.config_file}; `legion login` saves one, "
            "`legion config use-context NAME` picks one"
        )
    context = data["contexts"].get(chosen)
    if not isinstance(context, dict):
        raise NotFoundError(f"no context {chosen!r} in {settings.config_file}; known: {known(data)}")
    return data, chosen, context

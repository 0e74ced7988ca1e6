"""``legion serve PATH``: serve one model (Legion format, zip or MLflow directory) on every model API.

With ``--env-manager virtualenv`` the command first makes (or reuses) the model's own virtualenv
(``legion.environments``) and then becomes ``legion serve`` in it (``os.execve``: same process, same pid, so
whoever started it stops it as before), its settings handed over as ``LEGION_*`` variables.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from legion.cli.options import given_options, service_logging, settings_from_options
from legion.core.errors import InvalidInputError, LegionError

if TYPE_CHECKING:
    from legion.serving.settings import ServerSettings


def parse_properties(pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidInputError(f"--property takes NAME=VALUE, got {pair!r}")
        values[name] = value
    return values


ServeRun = Callable[["ServerSettings", Callable[[str], None]], int]
"""How ``legion serve`` runs its settings: ``run(settings, announce) -> exit code`` (``legion.serving.runner.run``)."""

OPTION_FIELDS = {"path": "model_path", "max_batch_wait": "max_batch_wait_s", "batch_linger": "batch_linger_s"}
"""Parameters whose settings field has another name (the others are named alike)."""


def run_server(settings: ServerSettings, announce: Callable[[str], None]) -> int:
    if settings.env_manager == "virtualenv":
        return serve_in_virtualenv(settings)
    from legion.serving.runner import run  # noqa: PLC0415  # only this command needs the server

    return run(settings, announce)


def serve_in_virtualenv(settings: ServerSettings) -> int:
    """Make or reuse the model's virtualenv, then become ``legion serve`` in it; returns only if that fails."""
    from legion.core.settings import as_environment  # noqa: PLC0415
    from legion.environments import ensure_environment, read_needs  # noqa: PLC0415

    def report(line: str) -> None:
        click.echo(f"legion serve: {line}", err=True)

    env = ensure_environment(read_needs(settings.model_path), settings.environments, report=report)
    inner = settings.model_copy(update={"env_manager": "local"})
    argv = [str(env.python), "-m", "legion", "serve", str(settings.model_path)]
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(argv[0], argv, {**os.environ, **as_environment(inner)})  # noqa: S606  # an argument list we built
    return 1  # pragma: no cover - execve does not return


def serve_command(run: ServeRun = run_server) -> click.Command:
    """The ``serve`` command; ``run`` replaces the model server's runner (a test sees the settings it would get)."""

    @click.command("serve")
    @click.argument("path", type=click.Path(exists=True, path_type=Path))
    @click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
    @click.option("--port", type=int, default=5000, show_default=True, help="Port to bind; 0 picks a free one.")
    @click.option("--workers", type=int, default=1, show_default=True, help="Worker processes (SO_REUSEPORT).")
    @click.option("--max-batch-size", type=int, default=64, show_default=True,
                  help="Most requests merged per model call.")  # fmt: skip
    @click.option("--max-batch-wait", type=float, default=0.01, show_default=True,
                  help="Most seconds a batch gathers arrivals.")  # fmt: skip
    @click.option("--batch-linger", type=float, default=0.005, show_default=True,
                  help="Seconds a small batch waits for more.")  # fmt: skip
    @click.option("--max-body-bytes", type=int, default=32 * 1024 * 1024, show_default=True,
                  help="Largest request body.")  # fmt: skip
    @click.option("--property", "properties", multiple=True, metavar="NAME=VALUE", help="Set a model property.")
    @click.option("--no-version-check", is_flag=True, help="Skip the version checks and the smoke prediction.")
    @click.option("--strict-requirements", is_flag=True, help="Refuse a model whose package versions differ.")
    @click.option("--env-manager", type=click.Choice(["local", "virtualenv"]), default="local", show_default=True,
                  help="local: this environment; virtualenv: the model's own, with its pins (uv).")  # fmt: skip
    @click.pass_context
    def serve(ctx: click.Context, /, path: Path, **_: Any) -> None:
        """Serve the model at PATH: Legion, OIP V2 and MLflow APIs, /metrics and /healthcheck.

        Options not given come from LEGION_* variables (LEGION_PORT, LEGION_WORKERS, LEGION_MAX_BATCH_SIZE, ...).
        """
        from legion.serving.settings import ServerSettings  # noqa: PLC0415

        values = given_options(ctx, OPTION_FIELDS)
        if "properties" in values:
            values["properties"] = parse_properties(values["properties"])
        if values.pop("no_version_check", False):
            values["check_versions"] = False
        settings = settings_from_options(ServerSettings, {**values, **service_logging(ctx.obj)})

        def announce(line: str) -> None:
            click.echo(line)
            url = line.removeprefix("listening on ")
            call = example_call(path, url)
            if call:
                click.echo(f"try it:\n  {call}")

        try:
            code = run(settings, announce)
        except KeyboardInterrupt:  # uvicorn stops cleanly on Ctrl-C, then raises the signal again for its caller
            code = 0
        raise SystemExit(code)

    return serve


serve = serve_command()


def example_call(path: Path, url: str) -> str | None:
    """A ready-to-paste ``curl`` for the default endpoint, from the example row saved with the model."""
    from legion.model.manifest import MANIFEST_NAME, Manifest  # noqa: PLC0415

    if not (path / MANIFEST_NAME).is_file():
        return None
    try:
        manifest = Manifest.read(path)
    except LegionError:
        return None  # the server reports it properly once it loads the model
    endpoint = manifest.endpoints.get("default") or next(iter(manifest.endpoints.values()))
    if endpoint.example is None:
        return None
    body = json.dumps(endpoint.example.model_dump(), separators=(",", ":"))
    return f"curl -s -X POST {url}/api/model/invoke -H 'Content-Type: application/json' -d {shlex.quote(body)}"

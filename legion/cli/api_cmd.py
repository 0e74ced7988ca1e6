"""``legion api``: run the management API; ``legion api token``: sign a token with this installation's key.

These commands start or own the service, so they import it (lazily); every other command talks to it through
``legion.client``.

The data directory holds the key that signs tokens, so it is honoured wherever it is given: ``legion api
--data-dir X token``, ``legion api token --data-dir X`` (the subcommand's option wins), ``LEGION_API_DATA_DIR`` or
``LEGION_DATA_DIR``. Ctrl-C is the way to stop the API in a terminal: a stop by SIGINT ends with status 0 and no
message, as a stop by SIGTERM does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from legion.cli.options import given_options, settings_from_options
from legion.core.tokens import ROLES

data_dir_option = click.option(
    "--data-dir", type=click.Path(path_type=Path), default=None, help="Database and keys ($LEGION_DATA_DIR, ~/.legion)."
)


@click.group("api", invoke_without_command=True)
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 5080; 0 picks a free one).")
@data_dir_option
@click.option("--database-url", default=None, help="SQLAlchemy URL (default: SQLite in the data directory).")
@click.option("--dev", is_flag=True, default=None, help="Turn authentication OFF (laptop only).")
@click.option("--runtime", type=click.Choice(["none", "memory", "local"]), default=None,
              help="Where deployments run (default: local processes).")  # fmt: skip
@click.option("--stop-replicas-on-exit", is_flag=True, default=None, help="Stop every replica when the API stops.")
@click.pass_context
def api(ctx: click.Context, /, **_: Any) -> None:
    """Run the management API (resources, tokens, the model registry).

    Options not given come from LEGION_API_* variables (LEGION_API_PORT, LEGION_API_DATA_DIR, ...), then
    LEGION_DATA_DIR for the data directory.
    """
    from legion.api.settings import ApiSettings  # noqa: PLC0415  # only the commands that own the service

    options = given_options(ctx)
    settings = settings_from_options(ApiSettings, options)  # checked here, before any subcommand
    ctx.obj = {**(ctx.obj or {}), "api_options": options, "api_settings": settings}
    if ctx.invoked_subcommand is None:
        from legion.api.runner import run  # noqa: PLC0415

        log_level = ctx.obj.get("log_level", "info")
        try:
            code = run(settings, click.echo, log_level, ctx.obj.get("log_format", "text"))
        except KeyboardInterrupt:  # uvicorn stops cleanly on Ctrl-C, then raises the signal again for its caller
            code = 0
        raise SystemExit(code)


@api.command("token")
@click.option("--role", "roles", multiple=True, type=click.Choice(ROLES), default=["admin"], show_default=True)
@click.option("--subject", default="admin", show_default=True, help="Who the token stands for.")
@click.option("--expires-in", type=float, default=24 * 3600.0, show_default=True, help="Lifetime in seconds.")
@data_dir_option
@click.pass_obj
def token(obj: dict[str, Any], roles: tuple[str, ...], subject: str, expires_in: float, data_dir: Path | None) -> None:
    """Print an API token signed with the key in the data directory (for `legion login`)."""
    from legion.api.runner import admin_token  # noqa: PLC0415
    from legion.api.settings import ApiSettings  # noqa: PLC0415

    settings = obj["api_settings"]
    if data_dir is not None:
        settings = settings_from_options(ApiSettings, {**obj["api_options"], "data_dir": data_dir})
    click.echo(admin_token(settings, subject, list(roles), expires_in))

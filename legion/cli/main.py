"""Entry point of ``legion``: the command group and error rendering."""

from __future__ import annotations

import click

from legion import __version__
from legion.cli.api_cmd import api
from legion.cli.config_cmd import config
from legion.cli.gateway_cmd import gateway
from legion.cli.model import model
from legion.cli.options import given_options
from legion.cli.resources import COMMANDS
from legion.cli.serve import serve
from legion.cli.shortcuts import SHORTCUTS
from legion.cli.up import up
from legion.core.errors import LegionError
from legion.core.logs import LogFormat, configure_logging


class LegionGroup(click.Group):
    """Renders every ``LegionError`` as ``Error: <detail>`` with its exit code."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except LegionError as exc:
            click.echo(f"Error: {exc.detail}", err=True)
            ctx.exit(exc.exit_code)


@click.group(cls=LegionGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="legion")
@click.option("-v", "--verbose", is_flag=True, help="Log more.")
@click.option(
    "--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True, help="Log line format."
)
@click.pass_context
def cli(ctx: click.Context, verbose: bool, log_format: LogFormat) -> None:
    """Legion: train, package, deploy and serve machine-learning models."""
    configure_logging("debug" if verbose else "warning", log_format)
    given = given_options(ctx)  # a service's own settings (LEGION_LOG_FORMAT, ...) fill what was not given here
    ctx.obj = {
        **({"log_format": log_format} if "log_format" in given else {}),
        **({"log_level": "debug"} if verbose else {}),
    }


cli.add_command(serve)
cli.add_command(api)
cli.add_command(config)
cli.add_command(gateway)
for command in [*COMMANDS, *SHORTCUTS]:
    cli.add_command(command)
cli.add_command(model)
cli.add_command(up)


def main() -> None:
    cli(prog_name="legion")

"""Entry point of ``legion``: the command group and error rendering."""

from __future__ import annotations

import logging
import sys

import click

from legion import __version__
from legion.cli.model import model
from legion.cli.serve import serve
from legion.core.errors import LegionError


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
def cli(verbose: bool) -> None:
    """Legion: train, package, deploy and serve machine-learning models."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


cli.add_command(serve)
cli.add_command(model)


def main() -> None:
    cli(prog_name="legion")

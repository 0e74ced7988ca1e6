"""``legion gateway``: run the gateway (Legion's EDGE) in front of the models of a management API.

``--data-dir`` names the API's data directory once, for the three things the gateway keeps or reads there (the
keys file, the prediction logs and their buffer); an option of its own still wins. Ctrl-C is the way to stop it in a
terminal, so a stop by SIGINT ends with status 0 and no message, as a stop by SIGTERM does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from legion.cli.options import given_options, service_logging, settings_from_options


@click.command("gateway")
@click.option("--host", default=None, help="Address to bind (default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port to bind (default 5090; 0 picks a free one).")
@click.option("--workers", type=int, default=None, help="Worker processes sharing the port (default 1).")
@click.option("--api-url", default=None, help="Management API to take the routing from (http://127.0.0.1:5080).")
@click.option("--api-token", default=None, help="API token for the routing (default: signed with the keys file).")
@click.option("--routing-file", type=click.Path(path_type=Path), default=None,
              help="Take the routing from this JSON file instead of an API (re-read when it changes).")  # fmt: skip
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="The API's data directory: its keys.json, and the logs/ and gateway/buffer/ of the gateway.",
)
@click.option("--keys-file", type=click.Path(path_type=Path), default=None,
              help="The API's keys.json, whose tokenSecret signs model tokens (~/.legion/keys.json).")  # fmt: skip
@click.option("--jwks-url", default=None, help="Check RS256 tokens with this identity provider's JWKS instead.")
@click.option("--issuer", default=None, help="Required token issuer (default legion).")
@click.option("--audience", default=None, help="Required token audience (default legion-model-api).")
@click.option("--no-auth", is_flag=True, default=None, help="Open every model to anyone (laptop only).")
@click.option("--log-sink", type=click.Choice(["local", "s3", "fluentd", "none"]), default=None,
              help="Where prediction and feedback records go (default local; S3/Fluentd details from "
                   "LEGION_GATEWAY_LOG_S3_* / LEGION_GATEWAY_LOG_FLUENTD_*).")  # fmt: skip
@click.option("--log-dir", type=click.Path(path_type=Path), default=None,
              help="Root of the local sink: model_log/<tag>/<model>/<version>/... (~/.legion/logs).")  # fmt: skip
@click.option("--log-buffer-dir", type=click.Path(path_type=Path), default=None,
              help="On-disk buffer of records not yet delivered (~/.legion/gateway/buffer).")  # fmt: skip
@click.option("--no-prediction-log", is_flag=True, default=None, help="Log no predictions and no feedback.")
@click.pass_context
def gateway(ctx: click.Context, /, **_: Any) -> None:
    """Run the gateway: routes, authenticates and meters every model call.

    Settings not given as options come from LEGION_GATEWAY_* variables (e.g. LEGION_GATEWAY_TOKEN_SECRET, or
    LEGION_GATEWAY_UPSTREAM__COLD_START_TIMEOUT_S for a field of a group).
    """
    from legion.gateway.runner import run  # noqa: PLC0415  # only this command needs the gateway
    from legion.gateway.settings import GatewaySettings  # noqa: PLC0415

    # the options carry the gateway's documented flat names (--log-dir is log_dir); the settings place them in groups
    values = given_options(ctx, {"no_auth": "auth", "no_prediction_log": "prediction_log"})
    for flag in ("auth", "prediction_log"):
        if flag in values:
            values[flag] = not values[flag]
    data_dir: Path | None = values.pop("data_dir", None)
    if data_dir is not None:
        values = {**in_data_dir(data_dir), **values}
    settings = settings_from_options(GatewaySettings, {**values, **service_logging(ctx.obj)})
    try:
        code = run(settings, announce=click.echo)
    except KeyboardInterrupt:  # uvicorn stops cleanly on Ctrl-C, then raises the signal again for its caller
        code = 0
    raise SystemExit(code)


def in_data_dir(data_dir: Path) -> dict[str, Path]:
    """The gateway's files in an API's data directory, as the settings of its options."""
    return {
        "keys_file": data_dir / "keys.json",
        "log_dir": data_dir / "logs",
        "log_buffer_dir": data_dir / "gateway" / "buffer",
    }

"""``legion serve PATH``: serve one model (Legion format, zip or MLflow directory) on every model API."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import click
from pydantic import ValidationError

from legion.core.errors import InvalidInputError, LegionError


def parse_properties(pairs: tuple[str, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise InvalidInputError(f"--property takes NAME=VALUE, got {pair!r}")
        values[name] = value
    return values


@click.command()
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=5000, show_default=True, help="Port to bind; 0 picks a free one.")
@click.option("--workers", default=1, show_default=True, help="Worker processes (SO_REUSEPORT).")
@click.option("--max-batch-size", default=64, show_default=True, help="Most requests merged per model call.")
@click.option("--max-batch-wait", default=0.01, show_default=True, help="Most seconds a batch gathers arrivals.")
@click.option("--batch-linger", type=float, default=None, help="Seconds a small batch waits for more [default: 0.005].")
@click.option("--max-body-bytes", default=32 * 1024 * 1024, show_default=True, help="Largest request body.")
@click.option("--property", "properties", multiple=True, metavar="NAME=VALUE", help="Set a model property.")
@click.option("--no-version-check", is_flag=True, help="Skip the Python and package version checks.")
@click.option("--strict-requirements", is_flag=True, help="Refuse a model whose package versions differ.")
@click.pass_obj
def serve(
    obj: dict[str, Any] | None,
    path: Path,
    host: str,
    port: int,
    workers: int,
    max_batch_size: int,
    max_batch_wait: float,
    batch_linger: float | None,
    max_body_bytes: int,
    properties: tuple[str, ...],
    no_version_check: bool,
    strict_requirements: bool,
) -> None:
    """Serve the model at PATH: Legion, OIP V2 and MLflow APIs, /metrics and /healthcheck."""
    from legion.serving.runner import run  # noqa: PLC0415  # only this command needs the server
    from legion.serving.settings import ServerSettings  # noqa: PLC0415

    given: dict[str, Any] = {} if batch_linger is None else {"batch_linger_s": batch_linger}
    try:
        settings = ServerSettings(
            model_path=path,
            host=host,
            port=port,
            workers=workers,
            max_batch_size=max_batch_size,
            max_batch_wait_s=max_batch_wait,
            max_body_bytes=max_body_bytes,
            properties=parse_properties(properties),
            check_versions=not no_version_check,
            strict_requirements=strict_requirements,
            **given,
            **(obj or {}),
        )
    except ValidationError as exc:
        problems = {".".join(str(p) for p in e["loc"]): e["msg"] for e in exc.errors()}
        raise InvalidInputError.for_fields(problems, prefix="invalid option") from None

    def announce(line: str) -> None:
        click.echo(line)
        url = line.removeprefix("listening on ")
        call = example_call(path, url)
        if call:
            click.echo(f"try it:\n  {call}")

    raise SystemExit(run(settings, announce=announce))


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

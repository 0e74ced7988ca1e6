"""``legion model ...``: work with a saved model on this machine.

``legion model image PATH --tag REF`` builds the model's OCI image (``legion.cli.image_cmd``); ``legion model
property set|get|list DEPLOYMENT`` reads and sets a deployment's model properties (``legion.cli.property_cmd``).

``legion model test PATH --json '{...}'`` predicts through the model server's own data plane and codecs (no HTTP),
so what passes here passes on the server. It accepts era-b ``{"columns": [...], "data": [[...]]}``, a list of
records, or one object of column values.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import orjson

from legion.cli.image_cmd import image
from legion.cli.property_cmd import model_property
from legion.core.errors import BadRequestError, UnavailableError
from legion.model.endpoints import Raw, UntypedEndpoint
from legion.model.loader import load_model
from legion.model.table import Table


@click.group()
def model() -> None:
    """Inspect and try saved models."""


model.add_command(image)
model.add_command(model_property)


@model.command("info")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def info(path: Path) -> None:
    """Show the manifest of the model at PATH (after checking it loads here)."""
    loaded = load_model(path)
    click.echo(loaded.manifest.to_yaml(), nl=False)
    for warning in loaded.warnings:
        click.echo(f"warning: {warning}", err=True)


@model.command("test")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "payload", required=True, help="Input: {columns, data}, a list of records, or an object.")
@click.option("--endpoint", default=None, help="Endpoint to call (default: 'default').")
def test(path: Path, payload: str, endpoint: str | None) -> None:
    """Predict locally with the model at PATH, through the same code path as the server."""
    from legion.serving import codecs  # noqa: PLC0415  # the server's decoders, without its HTTP layer
    from legion.serving.dataplane import DataPlane  # noqa: PLC0415
    from legion.serving.metrics import ServerMetrics  # noqa: PLC0415
    from legion.serving.settings import ServerSettings  # noqa: PLC0415

    try:
        data: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"--json is not valid JSON: {exc}") from None
    plane = DataPlane(ServerSettings(model_path=path), ServerMetrics())
    plane.load()
    target = plane.endpoint(endpoint)
    if isinstance(target, UntypedEndpoint):
        if not isinstance(data, dict):
            raise BadRequestError("an untyped endpoint takes one JSON object of parameters")
        click.echo(orjson.dumps(plane.call(target, data)).decode())
        return
    if isinstance(data, dict) and "columns" in data and "data" in data:
        table = codecs.from_rows(target, data["columns"], data["data"])
    elif isinstance(data, list):
        table = codecs.from_records(target, data)
    elif isinstance(data, dict):
        table = codecs.from_columns(target, data)
    else:
        raise BadRequestError("--json must be an object or a list")
    result: Table | Raw = asyncio.run(plane.predict(target, table))
    output = result.value if isinstance(result, Raw) else {"prediction": result.rows(), "columns": list(result.columns)}
    click.echo(orjson.dumps(output, option=orjson.OPT_SERIALIZE_NUMPY).decode())


@model.command("list")
@click.option("--name", default=None, help="Only versions of this model.")
@click.option("-o", "--output", "fmt", default="table", show_default=True, help="table, yaml, json or jsonpath=EXPR.")
def list_models(name: str | None, fmt: str) -> None:
    """List the model versions in the registry of the management API."""
    from legion.cli.output import render  # noqa: PLC0415
    from legion.cli.resources import client  # noqa: PLC0415

    columns = [("NAME", lambda m: m["name"]), ("VERSION", lambda m: m["version"]), ("SOURCE", lambda m: m["source"]),
               ("METRICS", lambda m: m["metrics"]), ("DEPLOYMENTS", lambda m: ", ".join(m["deployments"]))]  # fmt: skip
    with client() as session:
        render(session.models(name), fmt, columns, click.echo)


@model.command("import")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
def import_model(path: Path) -> None:
    """Register the model at PATH (on the API's machine) in the registry."""
    from legion.cli.resources import client  # noqa: PLC0415

    with client() as session:
        registered = session.import_model(str(path.resolve()))
    click.echo(f"model {registered['name']}:{registered['version']} registered")


@model.command("package")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.argument("output", type=click.Path(path_type=Path))
def package(path: Path, output: Path) -> None:
    """Make a local package of the model at PATH in OUTPUT (the model and its pinned requirements).

    This is what the ``local`` packaging integration runs; ``legion serve OUTPUT`` serves the package.
    """
    from legion.model.package import build_package  # noqa: PLC0415  # only this command needs it

    description = build_package(path, output)
    model_name = description["model"]
    click.echo(f"packaged {model_name} into {output}")


@model.command("invoke")
@click.argument("deployment_id")
@click.option("--json", "payload", required=True, help="Input: {columns, data}, a list of records, or an object.")
@click.option("--url", default=None, help="Call through this gateway (default: the context's gateway, else a replica).")
@click.option("--token", default=None, envvar="LEGION_MODEL_TOKEN", help="Model API token for the gateway.")
def invoke(deployment_id: str, payload: str, url: str | None, token: str | None) -> None:
    """Predict with the deployed model DEPLOYMENT_ID (era-b ``/api/model/invoke``); prints the answer's JSON.

    Through a gateway the call carries a model token: ``--token``, or one issued for this call by the API.
    """
    import httpx  # noqa: PLC0415  # only this command calls a model

    from legion.cli.config import ClientSettings, resolve  # noqa: PLC0415
    from legion.cli.resources import client  # noqa: PLC0415

    body = _era_b(payload)
    target = resolve(ClientSettings())
    with client() as session:
        deployment = session.get("/model/deployment", deployment_id)
        status = deployment.get("status", {})
        gateway = url or target.gateway
        headers: dict[str, str] = {}
        if gateway:
            base = f"{gateway.rstrip('/')}/model/{deployment_id}"
            if token is None and status.get("modelName"):
                token = session.model_token([{"name": status["modelName"]}], expires_in_s=300)["token"]
            if token:
                headers["Authorization"] = f"Bearer {token}"
        elif status.get("endpoints"):
            base = status["endpoints"][0]
        else:
            raise UnavailableError(
                f"deployment {deployment_id} has no ready replica ({status.get('state', 'Processing')})"
            )
    try:
        answer = httpx.post(f"{base}/api/model/invoke", json=body, headers=headers, timeout=60, trust_env=False)
    except httpx.TransportError as exc:
        raise UnavailableError(f"cannot reach {base}: {exc}") from None
    if answer.is_error:
        raise BadRequestError(f"the model answered {answer.status_code}: {answer.text[:2000]}")
    click.echo(answer.text)


def _era_b(payload: str) -> dict[str, Any]:
    """``{columns, data}`` from what ``--json`` holds (that form, a list of records, or one record)."""
    try:
        data: Any = orjson.loads(payload)
    except orjson.JSONDecodeError as exc:
        raise BadRequestError(f"--json is not valid JSON: {exc}") from None
    if isinstance(data, dict) and "columns" in data and "data" in data:
        return data
    records = [data] if isinstance(data, dict) else data
    if not isinstance(records, list) or not records or not all(isinstance(r, dict) for r in records):
        raise BadRequestError("--json must be {columns, data}, a non-empty list of objects, or an object")
    columns = list(records[0])
    return {"columns": columns, "data": [[record.get(c) for c in columns] for record in records]}

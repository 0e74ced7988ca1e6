"""``legion model ...``: work with a saved model on this machine.

``legion model image PATH --tag REF`` builds the model's OCI image (``legion.cli.image_cmd``); ``legion model
property set|get|list DEPLOYMENT`` reads and sets a deployment's model properties (``legion.cli.property_cmd``).

``legion model info PATH|DEPLOYMENT`` (or Legion's ``--md DEPLOYMENT``) shows a manifest: of the model at PATH, or,
when no such path exists here, of the model a ModelDeployment serves, as the management API describes it.

``legion model test PATH --json '{...}'`` (or ``--json @FILE``) predicts through the model server's own data plane
and codecs (no HTTP), so what passes here passes on the server. It accepts era-b ``{"columns": [...], "data":
[[...]]}``, a list of records, or one object of column values.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click
import orjson

from legion.cli.image_cmd import image
from legion.cli.jsonarg import JSON_TEXT
from legion.cli.property_cmd import model_property
from legion.client import error_from
from legion.core.errors import BadRequestError, LegionError, UnavailableError
from legion.model.endpoints import Raw, UntypedEndpoint
from legion.model.loader import load_model
from legion.model.table import Table


@click.group()
def model() -> None:
    """Inspect and try saved models."""


model.add_command(image)
model.add_command(model_property)


@model.command("info")
@click.argument("target", metavar="PATH|DEPLOYMENT", required=False)
@click.option("--md", "--model-deployment", "deployment", default=None, help="A ModelDeployment id (Legion's --md).")
@click.option("-o", "--output", "fmt", default="yaml", show_default=True, help="yaml, json or jsonpath=EXPR.")
def info(target: str | None, deployment: str | None, fmt: str) -> None:
    """Show the manifest of a model: the one at PATH (after checking it loads here), or the one the ModelDeployment
    DEPLOYMENT serves (asked of the management API; a PATH that exists here wins)."""
    from legion.cli.output import render  # noqa: PLC0415

    if (target is None) == (deployment is None):
        raise click.UsageError("give a model PATH or a DEPLOYMENT (or --md DEPLOYMENT), one of them")
    if fmt == "table":  # a manifest is one nested document: there is no table of it
        raise BadRequestError("model info prints yaml, json or jsonpath=EXPR, not a table")
    if target is not None and _exists(target):
        loaded = load_model(Path(target))
        render([loaded.manifest.model_dump(mode="json", by_alias=True, exclude_none=True)], fmt, [], click.echo,
               single=True)  # fmt: skip
        for warning in loaded.warnings:
            click.echo(f"warning: {warning}", err=True)
        return
    served = _deployed_model(deployment or str(target), from_option=deployment is not None)
    # the manifest as the model's files hold it, with the registry's metrics (a training's sent ones too)
    render([{**served["manifest"], "metrics": served["metrics"]}], fmt, [], click.echo, single=True)
    where = ", ".join(served["deployments"]) or "no deployment"
    state = f"registered (source {served['source']})" if served["registered"] else "not registered yet"
    click.echo(f"model {served['name']}:{served['version']}: {state}; deployed in {where}", err=True)


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    except OSError:  # a name the OS will not look up (too long): no path here
        return False


def _deployed_model(deployment: str, *, from_option: bool) -> dict[str, Any]:
    """The management API's description of the model ``deployment`` serves; an error says what was looked for."""
    from legion.cli.resources import client  # noqa: PLC0415

    try:
        with client() as session:
            return session.deployment_model(deployment)
    except LegionError as exc:
        looked = "" if from_option else f"{deployment!r} is not a path on this machine; as a ModelDeployment: "
        error_class: type[LegionError] = type(exc)
        raise error_class(f"{looked}{exc.detail}", fields=exc.fields) from None


@model.command("test")
@click.argument("path", type=click.Path(exists=True, path_type=Path))
@click.option("--json", "payload", type=JSON_TEXT, required=True,
              help="Input: {columns, data}, a list of records, or an object; @FILE or @- reads it.")  # fmt: skip
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
    """List the model versions in the registry of the management API (also ``legion get model [NAME]``)."""
    show_models(name, fmt)


def show_models(name: str | None, fmt: str) -> None:
    """Print the registry's model versions (of ``name`` only, when given) in ``fmt``."""
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

    This is what the ``local`` packaging integration runs; ``legion serve OUTPUT`` serves the package. Run in the
    model's own virtualenv (made by ``legion serve --env-manager virtualenv`` or a packaging with ``envManager:
    virtualenv``), the package records that environment and is deployed in it.
    """
    from legion.environments import read_needs, running_environment  # noqa: PLC0415  # only this command needs it
    from legion.model.package import build_package  # noqa: PLC0415

    environment: dict[str, str] | None = None
    running = running_environment()
    if running is not None:
        if running.needs == read_needs(path).digest():
            environment = {"manager": "virtualenv", "key": running.key, "python": str(running.python)}
        else:
            click.echo(f"warning: {running.python} is the virtualenv of another model; the package does not "
                       "record it", err=True)  # fmt: skip
    description = build_package(path, output, environment=environment)
    model_name = description["model"]
    click.echo(f"packaged {model_name} into {output}")


@model.command("invoke")
@click.argument("deployment_id")
@click.option("--json", "payload", type=JSON_TEXT, required=True,
              help="Input: {columns, data}, a list of records, or an object; @FILE or @- reads it.")  # fmt: skip
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
    if answer.is_error:  # the error class of the status, so a 401 exits as an API 401 does
        error = error_from(answer, fallback=answer.text[:2000])
        raise type(error)(f"the model answered {answer.status_code}: {error.detail}", fields=error.fields)
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

"""Legion's era-a verbs as thin shortcuts over the resource commands: ``deploy``, ``undeploy``, ``scale``,
``inspect`` and ``generate-token``, plus ``wait_for_deployment`` behind every ``--wait``."""

from __future__ import annotations

import click

from legion.cli.output import render
from legion.cli.resources import COLUMNS, client, token_create
from legion.cli.waiting import SCALES_FROM_ZERO, timeout_option, wait_for_deployment, wait_option

PATH = "/model/deployment"
FROM_ZERO = "no replica runs until a request comes through the gateway, which starts one; it stops again once idle"
"""What scaling from zero means, said whenever a command makes a deployment do it (``minReplicas: 0``)."""


@click.command()
@click.argument("deployment_id")
@click.option("--image", required=True, help="The model: a path on the API's machine (local runtime) or an image.")
@click.option("--replicas", type=int, default=1, show_default=True, help="Replicas to run (minReplicas).")
@wait_option
@timeout_option
def deploy(deployment_id: str, image: str, replicas: int, wait: bool, timeout: float) -> None:
    """Create or update the ModelDeployment DEPLOYMENT_ID."""
    document = {"kind": "ModelDeployment", "id": deployment_id,
                "spec": {"image": image, "minReplicas": replicas, "maxReplicas": max(replicas, 1)}}  # fmt: skip
    with client() as session:
        outcome, _ = session.apply(PATH, document)
        scales = f"; it {SCALES_FROM_ZERO}: {FROM_ZERO}" if replicas == 0 else ""
        click.echo(f"ModelDeployment {deployment_id} {outcome}{scales}")
        if wait:
            url = wait_for_deployment(session, deployment_id, timeout).get("status", {}).get("serviceURL")
            click.echo(f"ready at {url}" if url else "ready: a request through the gateway starts a replica")


@click.command()
@click.argument("deployment_id")
def undeploy(deployment_id: str) -> None:
    """Delete the ModelDeployment DEPLOYMENT_ID (its replicas are stopped)."""
    with client() as session:
        session.delete(PATH, deployment_id)
    click.echo(f"ModelDeployment {deployment_id} deleted")


@click.command()
@click.argument("deployment_id")
@click.option("--replicas", type=int, required=True, help="Replicas to run.")
@wait_option
@timeout_option
def scale(deployment_id: str, replicas: int, wait: bool, timeout: float) -> None:
    """Change the number of replicas of DEPLOYMENT_ID."""
    with client() as session:
        current = session.get(PATH, deployment_id)
        spec = {**current["spec"], "minReplicas": replicas,
                "maxReplicas": max(replicas, current["spec"].get("maxReplicas", 1), 1)}  # fmt: skip
        session.update(PATH, {"kind": "ModelDeployment", "id": deployment_id, "spec": spec,
                              "metadata": {"labels": current.get("metadata", {}).get("labels", {})}})  # fmt: skip
        if replicas == 0:
            change = f"; it now {SCALES_FROM_ZERO}: {FROM_ZERO}"
        elif current["spec"].get("minReplicas") == 0:
            change = f"; it no longer {SCALES_FROM_ZERO}"
        else:
            change = ""
        click.echo(f"ModelDeployment {deployment_id} scaled to {replicas}{change}")
        if wait:
            wait_for_deployment(session, deployment_id, timeout)


@click.command()
@click.option("-o", "--output", "fmt", default="table", show_default=True, help="table, yaml, json or jsonpath=EXPR.")
def inspect(fmt: str) -> None:
    """List the deployments and their state (Legion's `inspect`)."""
    with client() as session:
        render(session.list(PATH, size=1000), fmt, COLUMNS["ModelDeployment"], click.echo)


generate_token = click.Command(
    "generate-token", callback=token_create.callback, params=token_create.params,
    help="Issue a model API token (the same as `legion token create`).",
)  # fmt: skip

SHORTCUTS = [deploy, undeploy, scale, inspect, generate_token]

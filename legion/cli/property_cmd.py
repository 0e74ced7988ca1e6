"""``legion model property set|get|list DEPLOYMENT ...``: a deployment's model properties, through the API.

A property is set for the deployment — every replica, now and to come — through the management API (data
scientists and admins), which records it with the deployment's spec; ``legion serve --property`` and the server's
own ``PUT /api/model/properties`` are for a model served on one's own. ``VALUE`` is sent as the text it is and read
as the property's type (``10``, ``0.7``, ``true``, ``high``), so a text property keeps ``true`` as ``true``.

    legion model property set summation multiplier 10
    legion model property list summation -o json
"""

from __future__ import annotations

from typing import Any

import click

from legion.cli.output import render
from legion.cli.resources import client, output_option

COLUMNS = [("NAME", lambda p: p["name"]), ("VALUE", lambda p: p["value"]),
           ("MODEL VALUE", lambda p: p.get("modelValue"))]  # fmt: skip


@click.group("property")
def model_property() -> None:
    """Set and read a deployment's model properties (for every replica)."""


@model_property.command("set")
@click.argument("deployment_id")
@click.argument("name")
@click.argument("value")
def set_property(deployment_id: str, name: str, value: str) -> None:
    """Set property NAME of deployment DEPLOYMENT_ID to VALUE, for every replica."""
    with client() as session:
        changed = session.set_property(deployment_id, name, value)
    click.echo(f"deployment {deployment_id}: {changed['name']} = {_plain(changed['value'])}")


@model_property.command("get")
@click.argument("deployment_id")
@click.argument("name")
@output_option
def get_property(deployment_id: str, name: str, fmt: str) -> None:
    """Show property NAME of deployment DEPLOYMENT_ID."""
    with client() as session:
        render([session.get_property(deployment_id, name)], fmt, COLUMNS, click.echo, single=True)


@model_property.command("list")
@click.argument("deployment_id")
@output_option
def list_properties(deployment_id: str, fmt: str) -> None:
    """List every model property of deployment DEPLOYMENT_ID with the value its replicas hold."""
    with client() as session:
        render(session.properties(deployment_id), fmt, COLUMNS, click.echo)


def _plain(value: Any) -> str:
    return "true" if value is True else "false" if value is False else str(value)

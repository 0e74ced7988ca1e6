"""``--wait``: follow a deployment until it is Ready, printing each change; a failure is an error with its reason."""

from __future__ import annotations

import time
from typing import Any

import click

from legion.client import LegionClient
from legion.core.errors import LegionError, UnavailableError

PATH = "/model/deployment"
wait_option = click.option("--wait", is_flag=True, help="Wait until deployments are Ready (or have failed).")
timeout_option = click.option("--timeout", type=float, default=300.0, show_default=True, help="Seconds to wait.")


def wait_for_deployment(session: LegionClient, deployment_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll until Ready; print each change of state; ``Failed`` and time-outs are errors naming the reason."""
    deadline = time.monotonic() + timeout_s
    shown = None
    while True:
        current = session.get(PATH, deployment_id)
        status = current.get("status", {})
        want = current.get("spec", {}).get("minReplicas", 1)
        line = f"{deployment_id}: {status.get('state', 'Processing')} {status.get('availableReplicas', 0)}/{want}"
        if line != shown:
            click.echo(line, err=True)
            shown = line
        # a status written before the loop saw the new spec still says Ready: require the replicas the spec asks
        if status.get("state") == "Ready" and status.get("availableReplicas") == want:
            return current
        if status.get("state") == "Failed":
            raise LegionError(f"deployment {deployment_id} failed: {status.get('reason', 'no reason given')}")
        if time.monotonic() > deadline:
            raise UnavailableError(f"deployment {deployment_id} is not Ready after {timeout_s:.0f} s ({line})")
        time.sleep(0.5)

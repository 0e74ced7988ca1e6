"""``--wait``: follow a deployment, training or packaging until it is done, printing each change of state.

A deployment is done when it is ``Ready`` for the current spec (``observedGeneration`` equals the object's
``metadata.generation`` and the replicas the spec asks for are available); a training or packaging when its run of
the current spec has ``succeeded``. ``Failed``/``failed`` and time-outs are errors naming the reason (and, for a
job, its exit code).
"""

from __future__ import annotations

import time
from typing import Any

import click

from legion.client import LegionClient
from legion.core.errors import LegionError, UnavailableError

PATH = "/model/deployment"
JOB_PATHS = {"ModelTraining": "/model/training", "ModelPackaging": "/model/packaging"}
POLL_S = 0.5
wait_option = click.option("--wait", is_flag=True, help="Wait until the objects are ready (or have failed).")
timeout_option = click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds to wait.")


class WaitFailedError(LegionError):
    """What was waited for failed (the reason is in the message)."""


def _current(document: dict[str, Any], status: dict[str, Any]) -> bool:
    generation = document.get("metadata", {}).get("generation")
    return generation is None or status.get("observedGeneration") == generation


def wait_for_deployment(session: LegionClient, deployment_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll until Ready for the current spec; print each change; ``Failed`` and time-outs are errors."""
    deadline = time.monotonic() + timeout_s
    shown = None
    started = time.monotonic()
    while True:
        current = session.get(PATH, deployment_id)
        status = current.get("status", {})
        want = current.get("spec", {}).get("minReplicas", 1)
        line = f"{deployment_id}: {status.get('state', 'Processing')} {status.get('availableReplicas', 0)}/{want}"
        if line != shown:
            click.echo(f"[{time.monotonic() - started:5.1f}s] {line}", err=True)
            shown = line
        ready = status.get("state") == "Ready" and status.get("availableReplicas") == want
        if ready and _current(current, status):
            return current
        if status.get("state") == "Failed":
            raise WaitFailedError(f"deployment {deployment_id} failed: {status.get('reason', 'no reason given')}")
        if time.monotonic() > deadline:
            raise UnavailableError(f"deployment {deployment_id} is not Ready after {timeout_s:.0f} s ({line})")
        time.sleep(POLL_S)


def wait_for_job(session: LegionClient, kind: str, job_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll a ModelTraining or ModelPackaging until its run of the current spec has ended; ``failed`` is an error."""
    path = JOB_PATHS[kind]
    deadline = time.monotonic() + timeout_s
    shown = None
    started = time.monotonic()
    while True:
        current = session.get(path, job_id)
        status = current.get("status", {})
        state = status.get("state", "scheduling") if _current(current, status) else "scheduling"
        line = f"{kind} {job_id}: {state}" + (f" ({status['message']})" if status.get("message") else "")
        if line != shown:
            click.echo(f"[{time.monotonic() - started:5.1f}s] {line}", err=True)
            shown = line
        if state == "succeeded":
            return current
        if state == "failed":
            code = f" with exit code {status['exitCode']}" if status.get("exitCode") is not None else ""
            raise WaitFailedError(f"{kind} {job_id} failed{code}: {status.get('reason', 'no reason given')}")
        if time.monotonic() > deadline:
            raise UnavailableError(f"{kind} {job_id} has not finished after {timeout_s:.0f} s ({line})")
        time.sleep(POLL_S)


def wait_for(session: LegionClient, kind: str, ident: str, timeout_s: float) -> dict[str, Any] | None:
    """Wait for an object of any kind that has something to wait for; None for the others."""
    if kind == "ModelDeployment":
        return wait_for_deployment(session, ident, timeout_s)
    if kind in JOB_PATHS:
        return wait_for_job(session, kind, ident, timeout_s)
    return None

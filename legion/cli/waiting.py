"""``--wait``: follow a deployment, training or packaging until it is done, printing each change of state.

A deployment is done when it is ``Ready`` for the current spec (``observedGeneration`` equals the object's
``metadata.generation`` and the replicas the spec asks for are available); a training or packaging when its run of
the current spec has ``succeeded``. ``Failed``/``failed`` and time-outs are errors naming the reason (and, for a
job whose code failed, its exit code; a job whose code ended well but whose model could not be registered, with
exit code 0, shows the reason alone).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class _Look:
    """What one look at the object says: the progress line, and whether it is done or has failed (and why)."""

    line: str
    done: bool = False
    failure: str | None = None


def _follow(fetch: Callable[[], dict[str, Any]], judge: Callable[[dict[str, Any]], _Look], timeout_s: float,
            late: str) -> dict[str, Any]:  # fmt: skip
    """Poll ``fetch`` until ``judge`` says done, printing each new progress line with the time since the start;
    a failure, or ``late`` after ``timeout_s``, is an error."""
    started = time.monotonic()
    shown = None
    while True:
        current = fetch()
        look = judge(current)
        if look.line != shown:
            click.echo(f"[{time.monotonic() - started:5.1f}s] {look.line}", err=True)
            shown = look.line
        if look.done:
            return current
        if look.failure is not None:
            raise WaitFailedError(look.failure)
        if time.monotonic() - started > timeout_s:
            raise UnavailableError(f"{late} after {timeout_s:.0f} s ({look.line})")
        time.sleep(POLL_S)


SCALES_FROM_ZERO = "scales from zero"


def replicas_ready(deployment: dict[str, Any]) -> str:
    """The READY of a deployment: available replicas / wanted ones. One with ``minReplicas: 0`` wants the replicas
    it runs now (none while idle, one while a request through the gateway has woken it): ``0/0 (scales from zero)``.
    """
    status = deployment.get("status", {})
    available = status.get("availableReplicas") or 0
    wanted = deployment.get("spec", {}).get("minReplicas", 1)
    if wanted == 0:
        return f"{available}/{status.get('replicas') or 0} ({SCALES_FROM_ZERO})"
    return f"{available}/{wanted}"


def wait_for_deployment(session: LegionClient, deployment_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll until Ready for the current spec; print each change; ``Failed`` and time-outs are errors.

    A deployment that scales from zero is ready as soon as it is ``Ready``, whether a replica still runs or not."""

    def judge(current: dict[str, Any]) -> _Look:
        status = current.get("status", {})
        want = current.get("spec", {}).get("minReplicas", 1)
        line = f"{deployment_id}: {status.get('state', 'Processing')} {replicas_ready(current)}"
        ready = status.get("state") == "Ready" and (want == 0 or status.get("availableReplicas") == want)
        failed = status.get("state") == "Failed"
        why = f"deployment {deployment_id} failed: {status.get('reason', 'no reason given')}" if failed else None
        return _Look(line, ready and _current(current, status), why)

    return _follow(
        lambda: session.get(PATH, deployment_id), judge, timeout_s, f"deployment {deployment_id} is not Ready"
    )


def wait_for_job(session: LegionClient, kind: str, job_id: str, timeout_s: float) -> dict[str, Any]:
    """Poll a ModelTraining or ModelPackaging until its run of the current spec has ended; ``failed`` is an error."""

    def judge(current: dict[str, Any]) -> _Look:
        status = current.get("status", {})
        state = status.get("state", "scheduling") if _current(current, status) else "scheduling"
        line = f"{kind} {job_id}: {state}" + (f" ({status['message']})" if status.get("message") else "")
        why = None
        if state == "failed":
            why = f"{kind} {job_id} {_failure(status)}"
        return _Look(line, state == "succeeded", why)

    return _follow(lambda: session.get(JOB_PATHS[kind], job_id), judge, timeout_s, f"{kind} {job_id} has not finished")


def _failure(status: dict[str, Any]) -> str:
    """``failed with exit code 3: ValueError: ...; its log ends: ...``, or ``failed: <reason>`` when the code did
    not fail (exit code 0: what failed is a later step, as registering the model, and the reason says so)."""
    reason = str(status.get("reason") or "no reason given")
    code = status.get("exitCode")
    if not code:
        return f"failed: {reason}"
    rest = reason.removeprefix(f"exit code {code}")  # the reason opens with the code already: say it once
    return f"failed with exit code {code}" + (rest if rest != reason else f": {reason}")


def wait_for(session: LegionClient, kind: str, ident: str, timeout_s: float) -> dict[str, Any] | None:
    """Wait for an object of any kind that has something to wait for; None for the others."""
    if kind == "ModelDeployment":
        return wait_for_deployment(session, ident, timeout_s)
    if kind in JOB_PATHS:
        return wait_for_job(session, kind, ident, timeout_s)
    return None

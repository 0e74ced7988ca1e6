"""The reconcile loop (``loop.Reconciler``) and one controller per kind it drives: deployments through a
``Runtime`` (``deployments``), trainings and packagings through local jobs (``trainings``, ``packagings`` over
``jobs``). The composition root registers each controller with ``Reconciler.add``. A step's outcome is a value
(``outcomes``) that carries the status patch the loop alone writes.
"""

from __future__ import annotations

from legion.api.reconcile.deployments import DeploymentController
from legion.api.reconcile.loop import LoopSettings, Reconciler
from legion.api.reconcile.outcomes import Controller, Done, Failed, Gone, OnDemand, Outcome, Retry, Settled

__all__ = [
    "Controller",
    "DeploymentController",
    "Done",
    "Failed",
    "Gone",
    "LoopSettings",
    "OnDemand",
    "Outcome",
    "Reconciler",
    "Retry",
    "Settled",
]

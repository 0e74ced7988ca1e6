"""The reconcile loop (``loop.Reconciler``) and one controller per kind it drives: deployments through a
``Runtime``, trainings and packagings through local jobs. Outcomes of a step are values (``outcomes``)."""

from __future__ import annotations

from legion.api.reconcile.loop import Reconciler
from legion.api.reconcile.outcomes import Controller, Done, Failed, Gone, Outcome, Retry, Settled

__all__ = ["Controller", "Done", "Failed", "Gone", "Outcome", "Reconciler", "Retry", "Settled"]

"""``StatusPatch``: what one reconcile step changes in a resource's status, typed by the kind's status model.

A controller builds its kind's status model with only the fields it changes: a field given a value replaces the
stored one, a field given as None is removed, a field not given stays as it is. The management API's reconcile
loop is the only writer of a status; it applies the patch an outcome carries (``apply``), so the merge rules live
here once, beside the models they read. One of them: ``reason`` is kept only while ``state`` is the kind's failed
state (``FAILED_STATE``: ``Failed`` for a ModelDeployment, ``failed`` for a training or a packaging, Legion's own
spellings on the wire).

    >>> patch = StatusPatch(ModelDeploymentStatus(state="Failed", reason="no such model", message=None))
    >>> patch.apply({"state": "Processing", "replicas": 1, "message": "starting"})
    {'state': 'Failed', 'replicas': 1, 'reason': 'no such model'}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from legion.core.resources.jobs import JobStatus
from legion.core.resources.serving import ModelDeploymentStatus

ReconciledStatus = ModelDeploymentStatus | JobStatus
"""The status models a reconcile step writes (``JobStatus``: ``ModelTrainingStatus``, ``ModelPackagingStatus``)."""


@dataclass(frozen=True, slots=True)
class StatusPatch:
    """The fields of ``changes`` that were given: set (a value), removed (None) or, when not given, kept."""

    changes: ReconciledStatus

    def fields(self) -> dict[str, Any]:
        """The given fields by wire name, as JSON; None for one to remove (nested values lose their None fields)."""
        model = type(self.changes)
        values = self.changes.model_dump(mode="json", by_alias=True, exclude_none=True)
        given = (model.model_fields[name].alias or name for name in self.changes.model_fields_set)
        return {name: values.get(name) for name in given}

    def then(self, later: StatusPatch) -> StatusPatch:
        """This patch followed by ``later`` as one patch (``later``'s fields win); both of the same status model."""
        if type(later.changes) is not type(self.changes):
            raise TypeError(f"cannot follow a {type(self.changes).__name__} with a {type(later.changes).__name__}")
        update = {name: getattr(later.changes, name) for name in later.changes.model_fields_set}
        return StatusPatch(self.changes.model_copy(update=update))

    def apply(self, current: Mapping[str, Any]) -> dict[str, Any]:
        """The status ``current`` becomes (wire names, no None values); ``current`` itself is not changed."""
        merged = {**current, **self.fields()}
        if merged.get("state") != self.changes.FAILED_STATE:
            merged.pop("reason", None)
        return {name: value for name, value in merged.items() if value is not None}

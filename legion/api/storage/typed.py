"""``stored_resource``: a stored row read back as its typed ``legion.core.resources`` model.

The stores keep specs and statuses as JSON and know no schema; this is the one place where a row becomes a typed
resource again, shared by the resource service (``legion.api.services``) and the reconcile controllers, which both
stand on storage. A row was validated when it was written, so reading it back does not fail on a sound database.
"""

from __future__ import annotations

from legion.api.storage.resources import StoredResource
from legion.core.resources import Resource, parse_resource


def stored_resource(stored: StoredResource) -> Resource:
    """The typed resource behind a stored row, status included."""
    return parse_resource(
        {
            "kind": stored.kind,
            "id": stored.id,
            "metadata": {
                "labels": stored.labels,
                "createdAt": stored.created_at,
                "updatedAt": stored.updated_at,
                "generation": stored.generation,
            },
            "spec": stored.spec,
            "status": stored.status,
        },
        keep_status=True,
    )

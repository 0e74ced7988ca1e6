"""The management API (Legion's EDI): resources CRUD, auth, the model registry and the reconcile loop that drives
a runtime.

``app.create_app(settings)`` is its composition root. It depends on ``legion.core`` (and ``legion.model`` for
manifests) and never on the model server or the gateway; the CLI reaches it only through ``legion.client``.
"""

"""Legion: take a machine-learning model from training to a measured, authenticated production API.

Sub-packages, from the bottom up (import-linter keeps the direction; see ``[tool.importlinter]``):

- ``legion.core``: the error tree, settings base, resource kinds and wire vocabulary; imports nothing else of Legion.
- ``legion.model``: the model SDK (``legion.model.init``/``export_df``/...) and the on-disk model format.
- ``legion.environments``: a model's own virtualenv (its pinned requirements plus Legion's serving runtime), made
  with uv and cached, and the requirement set every model environment (virtualenv or OCI image) installs.
- ``legion.feedback``: prediction and feedback records, buffered on disk and shipped at least once to a sink.
- ``legion.hosting``: how every service is hosted (uvicorn, the port, worker processes, ``/metrics`` text).
- ``legion.serving``: the model server that loads one model and speaks every model API.
- ``legion.gateway``: the one front door to every model (auth, routing, splits, mirroring, prediction logging).
- ``legion.api``: the management API (resources, tokens, registry, the reconcile loop and its runtimes,
  the dashboard).
- ``legion.client``: the typed HTTP client of the management API.
- ``legion.cli``: the ``legion`` / ``legionctl`` command; it reaches the management API only through the client.

The three services (``serving``, ``gateway``, ``api``) are independent of each other and talk over HTTP.
"""

__version__ = "0.1.0"

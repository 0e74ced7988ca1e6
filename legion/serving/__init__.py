"""The model server: loads one model and serves it over every model API Legion speaks.

Layout, from the wire inwards:

- ``app.create_app(settings)``: the composition root (Starlette routes, error rendering, middleware).
- ``protocols/``: thin adapters, one module per API (Legion era-a and era-b, OIP V2, MLflow scoring); each
  turns its wire format into ``Table``s and back, nothing more.
- ``dataplane.DataPlane``: protocol-independent: endpoint lookup, readiness, batching, metrics.
- ``batching.Batcher``: merges concurrent requests to one endpoint into one model call.
- ``codecs``: wire values -> validated ``Table`` (columns checked against the signature).
- ``runner.run(settings)``: sockets, worker processes, signals.

It depends on ``legion.model`` and ``legion.core``; it knows nothing of the gateway or management API.
"""

"""The gateway (Legion's EDGE): the one front door to every model.

It owns the data path between clients and model server replicas: routing by deployment (``/model/<id>/…``), by
model version (``/api/model/<name>/<version>/…``) and by ModelRoute prefix with weighted splits and mirroring;
JWT checks (HS256 with the management API's secret, RS256 through an identity provider's JWKS) against model
scopes and the revocation list; request ids; load balancing with keep-alive pools and retries; scale from zero;
metrics and access logs; and the feedback entry point (``/feedback/…``) behind a handler seam.

Layout, from the wire inwards:

- ``app.create_app(settings)``: the composition root; ``runner.run(settings)``: sockets, workers, signals.
- ``proxy.Gateway``: the raw ASGI request path; ``forwarding.Forwarder``: replicas, retries, mirrors;
  ``upstream``: the HTTP/1.1 keep-alive client; ``balancing``: weighted and round-robin choices.
- ``table``: the routing snapshot as frozen values and path resolution; ``sources``: where snapshots come from
  (the management API's long-poll, a file, or in memory) and the watcher that keeps the current one.
- ``auth`` and ``jwks``: tokens; ``feedback``: the feedback handler and sink protocols; ``metrics``, ``accesslog``.

It depends on ``legion.core`` only. It does not import the management API (it reads its routing over HTTP) or
the model server (it calls replicas over HTTP); prediction records and feedback stores belong to their own
sinks behind ``feedback.FeedbackSink``, not here.
"""

"""The management API (Legion's EDI): resources CRUD, auth, the model registry and the reconcile loop that drives
a runtime.

``app.create_app(settings)`` is its composition root. It depends on ``legion.core`` (and ``legion.model`` for
manifests) and never on the model server or the gateway; the CLI reaches it only through ``legion.client``.

Layers inside, each importing only those below it (an import-linter contract in ``pyproject.toml``)::

    runner                    process entry point: settings, keys, uvicorn
    app                       create_app(settings): wires every piece below, the only place that knows them all
    *_routes, metrics, ui     the HTTP surface: one router per concern and the dashboard, independent of each other
    auth, bodies, problems    what routers share: the caller's rights, reading a JSON body, problem+json errors
    services                  what the routes do with resources, without HTTP (ResourceService, public_document)
    reconcile                 the loop and one controller per kind; outcomes carry the status the loop writes
    runtime | storage         where replicas and jobs run (one module per runtime) | the database (typed rows)
    keys, settings            the API's settings and the keys they point at

So a controller never reaches back through a router: what both need (a stored row as a typed resource,
``storage.typed.stored_resource``) sits below both.
"""

"""How a Legion service is hosted: the HTTP server, its port, its worker processes and its ``/metrics`` text.

The three services (the model server, the gateway and the management API) are each served the same way, and that
way is written here once:

- ``http.http_server``: the uvicorn server and its one configuration (event loop, HTTP parser, graceful shutdown,
  no ``Server`` header, Legion's log handlers), and the hook that runs when the server is told to stop;
- ``heads.head_limited``: the HTTP protocol that server speaks, uvicorn's httptools one refusing a request head over
  the service's ``max_header_bytes`` with 431 before it is read further;
- ``workers.run_workers`` (with ``supervisor.supervise``): bind the port before any worker starts (so
  ``--port 0`` works and is announced once), serve in this process with one worker, or start N worker processes
  on the port (``SO_REUSEPORT``) with the settings object handed to each, supervise them and aggregate their
  metrics through a Prometheus multiprocess directory;
- ``supervisor.RestartPolicy`` (with ``Restarts``): when a process that died is started again (backoff, reset,
  give up), as a value any supervisor applies (``legion up`` to its API and gateway);
- ``metrics.exposition``: the Prometheus text of one registry, or of every worker in multiprocess mode.

What does not belong here: anything a service decides (routes, what a worker does before it serves, which exit
codes are fatal). The services import this package; it imports only ``legion.core`` and the server libraries.
"""

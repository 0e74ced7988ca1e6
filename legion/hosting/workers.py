"""``run_workers``: bind a service's port, then serve in this process or in N worker processes under a supervisor.

The listening port is bound here, before any worker starts, so ``--port 0`` works and the address is announced
once (``listening on http://HOST:PORT``). One worker serves in this process, on that socket. With several, each
worker process binds its own socket to the same port with ``SO_REUSEPORT``, so the kernel spreads connections
evenly (a shared accept socket lets the busiest worker take most keep-alive connections). Each worker is handed
the service's settings object itself, pickled by ``multiprocessing`` (a JSON dump would mask its secrets), with
the port the parent bound; the metrics of all of them live in one Prometheus multiprocess directory.

``legion.hosting.supervisor.supervise`` keeps the workers running and replaces one that dies.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from typing import Protocol, Self, TypeVar

from legion.core.net import bind, url_of
from legion.hosting.supervisor import supervise


class HostedSettings(Protocol):
    """What ``run_workers`` reads of a service's settings (a frozen pydantic settings object)."""

    @property
    def host(self) -> str: ...

    @property
    def port(self) -> int: ...

    @property
    def workers(self) -> int: ...

    def model_copy(self, *, update: dict[str, object] | None = None, deep: bool = False) -> Self: ...


S = TypeVar("S", bound=HostedSettings)

Serve = Callable[[S, socket.socket | None, str | None], int]
"""``serve(settings, sock, multiprocess_dir) -> exit code``: what one worker of a service does."""


def run_workers(
    settings: S,
    serve: Serve[S],
    *,
    announce: Callable[[str], None],
    fatal: Callable[[int], bool],
    name: str,
) -> int:
    """Serve with ``serve(settings, sock, multiprocess_dir)`` in ``settings.workers`` processes; the exit code.

    ``serve`` is given the bound socket when it serves in this process, and ``None`` in a worker process (it then
    binds its own socket to ``settings.port`` when it is ready). It must be a module-level function: worker
    processes are spawned and import it by name.
    """
    sock = bind(settings.host, settings.port, listen=settings.workers == 1)
    announce(f"listening on {url_of(sock)}")
    if settings.workers == 1:
        return serve(settings, sock, None)
    try:
        with tempfile.TemporaryDirectory(prefix="legion-metrics-") as multiprocess_dir:
            # prometheus_client picks its multiprocess value store from this variable when a worker imports it
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir
            worker_settings = settings.model_copy(update={"port": sock.getsockname()[1]})
            return _supervise_workers(worker_settings, serve, multiprocess_dir, fatal=fatal, name=name)
    finally:
        sock.close()


def _supervise_workers(
    settings: S,
    serve: Serve[S],
    multiprocess_dir: str,
    *,
    fatal: Callable[[int], bool],
    name: str,
) -> int:
    from prometheus_client import multiprocess  # noqa: PLC0415  # after PROMETHEUS_MULTIPROC_DIR is set

    context = multiprocessing.get_context("spawn")

    def start() -> BaseProcess:
        process = context.Process(target=_worker, args=(serve, settings, multiprocess_dir), daemon=False)
        process.start()
        return process

    return supervise(
        start, settings.workers, fatal=fatal, on_exit=multiprocess.mark_process_dead, name=f"{name} worker"
    )


def _worker(serve: Serve[S], settings: S, multiprocess_dir: str) -> None:
    try:
        code = serve(settings, None, multiprocess_dir)
    except KeyboardInterrupt:  # Ctrl-C: uvicorn stopped cleanly, then raised the signal again for its caller
        code = 0
    sys.exit(code)

"""``run_workers``: bind a service's port, then serve in this process or in N worker processes under a supervisor.

The listening port is bound here, before any worker starts, so ``--port 0`` works and the address is announced
once (``listening on http://HOST:PORT``). One worker serves in this process, on that socket. With several, each
worker process binds its own socket to the same port with ``SO_REUSEPORT``, so the kernel spreads connections
evenly (a shared accept socket lets the busiest worker take most keep-alive connections). Each worker is handed
the service's settings object itself, pickled by ``multiprocessing`` (a JSON dump would mask its secrets), with
the port the parent bound; the metrics of all of them live in one Prometheus multiprocess directory.

``supervise`` keeps the workers running: SIGTERM/SIGINT are forwarded to every worker; a worker that dies is
replaced, unless its exit code says another would fail the same way (``fatal``: bad settings, a model that
cannot load), in which case the others are stopped and that code is returned. ``on_exit(pid)`` runs for each
worker that ended.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Protocol, Self, TypeVar

from legion.core.net import bind, url_of

log = logging.getLogger(__name__)


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
    sys.exit(serve(settings, None, multiprocess_dir))


def supervise(
    start: Callable[[], BaseProcess],
    count: int,
    *,
    fatal: Callable[[int], bool],
    on_exit: Callable[[int], None] = lambda pid: None,
    name: str = "worker",
) -> int:
    """Run ``count`` workers made by ``start`` (each already started) until they have all stopped; the exit code."""
    stopping = False
    workers = [start() for _ in range(count)]

    def forward(signum: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for process in workers:
            if process.pid is not None and process.is_alive():
                os.kill(process.pid, signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    exit_code = 0
    while workers:
        multiprocessing.connection.wait([p.sentinel for p in workers])
        for process in [p for p in workers if not p.is_alive()]:
            workers.remove(process)
            if process.pid is not None:
                on_exit(process.pid)
            code = process.exitcode or 0
            if stopping:
                exit_code = exit_code or max(code, 0)  # a worker ended by the signal we forwarded exits cleanly
            elif fatal(code):
                exit_code = exit_code or code
                forward(signal.SIGTERM, None)
            else:
                log.warning("%s %s exited with %s; starting another", name, process.pid, code)
                workers.append(start())
    return exit_code

"""``supervise``: keep N worker processes of a server running until it is told to stop.

The model server and the gateway both run several workers on one port (``SO_REUSEPORT``) under a supervisor
process: SIGTERM/SIGINT are forwarded to every worker; a worker that dies is replaced, unless its exit code says
another would fail the same way (``fatal``: bad settings, a model that cannot load), in which case the others are
stopped and that code is returned. ``on_exit(pid)`` runs for each worker that ended (``workers.run_workers`` tells
prometheus_client's multiprocess store, which this module must not import).
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import os
import signal
from collections.abc import Callable
from multiprocessing.process import BaseProcess
from types import FrameType

log = logging.getLogger(__name__)


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

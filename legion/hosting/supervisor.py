"""How a supervisor keeps processes running: ``supervise`` for a server's workers, ``RestartPolicy`` and ``Restarts``
for any process worth restarting when it dies.

The model server and the gateway both run several workers on one port (``SO_REUSEPORT``) under a supervisor
process: SIGTERM/SIGINT are forwarded to every worker; a worker that dies is replaced, unless its exit code says
another would fail the same way (``fatal``: bad settings, a model that cannot load), in which case the others are
stopped and that code is returned. ``on_exit(pid)`` runs for each worker that ended (``workers.run_workers`` tells
prometheus_client's multiprocess store, which this module must not import).

``RestartPolicy`` is the rule as a value (exponential backoff, capped; reset once a process has stayed up a while;
give up after so many rapid deaths in a row) and ``Restarts`` applies it to one process. They take the time as an
argument and start nothing themselves, so any supervisor can use them (``legion up`` restarts its management API
and gateway with them) and they are tested without waiting.
"""

from __future__ import annotations

import logging
import multiprocessing.connection
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class RestartPolicy:
    """When a process that died on its own is started again.

    A dead process is started again after ``initial_delay_s``. A death less than ``reset_after_s`` after the start is
    rapid, and each further rapid death in a row doubles the wait, up to ``max_delay_s``; a process that stayed up
    ``reset_after_s`` was healthy, and its death starts the count over. At the ``max_rapid_failures``-th rapid death
    in a row the supervisor gives up: a process that cannot stay up is not saved by more restarts, and its reason is
    better shown than hidden in a loop::

        restarts = Restarts(RestartPolicy(initial_delay_s=0.5, max_delay_s=30.0))
        restarts.started(time.monotonic())
        delay = restarts.died(time.monotonic())  # seconds to wait before the next start, or None: give up
    """

    initial_delay_s: float = 0.5
    """Wait before the first restart (and after a healthy run)."""
    max_delay_s: float = 30.0
    """Longest wait between restarts."""
    reset_after_s: float = 60.0
    """A process that stayed up this long counts as healthy again."""
    max_rapid_failures: int = 5
    """Give up at this many deaths in a row, each less than ``reset_after_s`` after its start."""

    def __post_init__(self) -> None:
        if not 0 < self.initial_delay_s <= self.max_delay_s:
            raise ValueError("a restart policy needs 0 < initial_delay_s <= max_delay_s")
        if self.reset_after_s <= 0 or self.max_rapid_failures < 1:
            raise ValueError("a restart policy needs reset_after_s > 0 and max_rapid_failures >= 1")


class Restarts:
    """``RestartPolicy`` applied to one process: call ``started(now)`` when it starts and ``died(now)`` when it ended
    on its own (``now`` from ``time.monotonic()``)."""

    def __init__(self, policy: RestartPolicy) -> None:
        self.policy = policy
        self.rapid_failures = 0
        """Deaths in a row, each soon after its start."""
        self._started_at: float | None = None

    def started(self, now: float) -> None:
        self._started_at = now

    def died(self, now: float) -> float | None:
        """Seconds to wait before starting the process again, or ``None``: it keeps dying, give up."""
        policy = self.policy
        uptime = now - self._started_at if self._started_at is not None else 0.0
        self._started_at = None
        if uptime >= policy.reset_after_s:
            self.rapid_failures = 0
            return policy.initial_delay_s
        self.rapid_failures += 1
        if self.rapid_failures >= policy.max_rapid_failures:
            return None
        return float(min(policy.initial_delay_s * 2 ** (self.rapid_failures - 1), policy.max_delay_s))

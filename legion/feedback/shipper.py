"""``Shipper``: a thread that moves records from a ``DiskBuffer`` to a ``Sink``, at least once.

It reads a batch from the buffer's cursor, hands it to the sink and commits the cursor only when the sink took it;
after a batch smaller than ``batch_records`` it waits ``gather_s`` so that the next one gathers what arrives
meanwhile (one sink write per request would cost more CPU than the request);
a failing sink is retried with backoff (``retry_s`` doubling up to ``max_retry_s``) while the buffer keeps taking
records, so an unreachable sink buffers and then delivers. ``stop`` delivers what it can within its deadline.
``ship_forever`` runs one in a process of its own (the gateway's way: making the records and writing them then never
hold the GIL that the gateway's event loop needs).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from legion.feedback.buffer import DiskBuffer, Position
from legion.feedback.records import Encoded
from legion.feedback.sinks import Sink

log = logging.getLogger(__name__)

NICENESS = 10
"""How much lower than the serving processes a shipper process runs (``os.nice``, and its session's nice)."""
AUTOGROUP: Final = Path("/proc/self/autogroup")


class Shipper:
    """``Shipper(buffer, sink).start()``; ``stop()`` on shutdown."""

    def __init__(
        self,
        buffer: DiskBuffer,
        sink: Sink,
        *,
        batch_records: int = 1000,
        idle_s: float = 0.5,
        gather_s: float = 0.2,
        retry_s: float = 0.2,
        max_retry_s: float = 10.0,
    ) -> None:
        self.buffer = buffer
        self.sink = sink
        self.batch_records = batch_records
        self.idle_s = idle_s
        self.gather_s = gather_s
        self.retry_s = retry_s
        self.max_retry_s = max_retry_s
        self.delivered = 0
        self.failures = 0
        self._pending: tuple[list[Encoded], Position] | None = None
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"legion-shipper-{sink.name}", daemon=True)
        buffer.notify(self._wake)

    def start(self) -> Shipper:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        """Deliver what is buffered (within ``timeout_s``), then stop the thread."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout_s)

    def ship_once(self) -> int:
        """Deliver one batch; how many records went (0: nothing to do). Raises what the sink raised.

        A batch the sink refused is offered again as the same list, so a sink that fans out (``FanOutSink``) can
        tell which of its sinks already have it and not write those twice."""
        if self._pending is None:
            self._pending = self.buffer.read(self.batch_records)
        records, position = self._pending
        if records:
            self.sink.deliver(records)
            self.delivered += len(records)
        self._pending = None
        if records or position != self.buffer.cursor:
            self.buffer.commit(position)
        return len(records)

    def _run(self) -> None:
        delay = self.retry_s
        while True:
            try:
                shipped = self.ship_once()
                delay = self.retry_s
            except Exception as exc:  # any sink failure: keep the records, try again later
                self.failures += 1
                log.warning("%s sink failed (%s); retrying in %.1f s", self.sink.name, exc, delay)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, self.max_retry_s)
                continue
            if shipped >= self.batch_records:
                continue  # a backlog: keep going
            if shipped and not self._stop.is_set():
                self._stop.wait(self.gather_s)  # let the next batch gather: a sink write per request costs more
                continue  # than the request (measured in benchmarks/gateway.py)
            if self._stop.is_set():
                return
            self._wake.wait(self.idle_s)
            self._wake.clear()


def run_below_serving(niceness: int = NICENESS) -> None:
    """Lower this process below the serving processes, on a CPU they both want: ``niceness`` lower, in a session
    of its own whose scheduling group is as much lower.

    Why the session: where the kernel groups processes by session (autogroup: on by default in kernels built
    with it, as on the machines here; ``/proc/sys/kernel/sched_autogroup_enabled``), CPU time is shared fairly
    between sessions first, and ``nice`` only counts inside one. Model servers lead sessions of their own
    (``legion up``'s replicas), so a shipper that is only ``nice`` in the gateway's session still takes half of
    a core that a model server wants (measured: 50 % of a shared core against 10 % so;
    ``tests/feedback/test_shipper.py``).
    The process leaves the serving process's session, which signals from a terminal then do not reach; the
    serving process stops it (``PredictionLog.close``) and it stops by itself when that process is gone."""
    with contextlib.suppress(OSError):
        os.nice(niceness)
    with contextlib.suppress(OSError):  # it leads its session already
        os.setsid()
    for _ in range(20):  # without CAP_SYS_ADMIN, the kernel takes one change of a group's nice per 100 ms
        try:
            AUTOGROUP.write_text(f"{niceness}\n", encoding="ascii")
            return
        except BlockingIOError:
            time.sleep(0.1)
        except OSError:  # no autogroups (a kernel without them, or a container's cgroup): nice is enough
            return


def ship_forever(
    directory: Path, make_sink: Callable[[int], Sink], writer: int, parent_pid: int, idle_s: float = 0.2
) -> None:
    """A shipper process's main: deliver ``directory`` (opened to read only) until SIGTERM/SIGINT or until the
    process that writes it is gone, then deliver what is left and return. ``make_sink`` must pickle.

    The process runs in the background (``run_below_serving``): shipping is work that the buffer lets wait, so
    when the machine is busy the serving processes go first and the shipper catches up in the gaps (at c32 on
    two cores, the gaps while the model computes a batch)."""
    run_below_serving()
    stopping = threading.Event()
    for number in (signal.SIGTERM, signal.SIGINT):
        signal.signal(number, lambda signum, frame: stopping.set())
    shipper = Shipper(DiskBuffer(directory, write=False), make_sink(writer), idle_s=idle_s).start()
    while not stopping.wait(0.5):
        if os.getppid() != parent_pid:  # the writer died (kill -9): its successor starts a shipper of its own
            break
    shipper.stop()

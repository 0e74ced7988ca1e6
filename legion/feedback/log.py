"""``PredictionLog``: what a serving process holds to log predictions and feedback, from open to close.

It claims a buffer directory of its own (``<root>/<n>``, the lowest ``n`` no live process holds: an ``flock`` on
``<root>/<n>/lock``, which the kernel releases when the holder dies), so several workers never share a buffer
and a restarted one takes over what a killed one left and ships it. ``prediction(...)`` and ``feedback(...)``
append records (one ``write`` each: a kill -9 right after the call loses nothing) and return at once; a shipper
process of its own (``shipper.ship_forever``, so that parsing and writing batches never holds this process's GIL;
it ends when this process does) delivers them to the sink, ``FanOutSink`` when there are several (a batch goes to each;
one failing means the batch comes again to all: duplicates, never losses).

    log = PredictionLog.open(Path("~/.legion/gateway/buffer"), functools.partial(LocalSink, Path("~/.legion/logs")))
    log.predictions([entries.prediction(ModelCall(b"...", "census-income", ...))])
    log.close()
"""

from __future__ import annotations

import contextlib
import fcntl
import multiprocessing
import os
import signal
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

from legion.feedback import records
from legion.feedback.buffer import DiskBuffer
from legion.feedback.records import Encoded
from legion.feedback.shipper import ship_forever
from legion.feedback.sinks import Sink


class FanOutSink:
    """Deliver each batch to every sink, in order; raise when any of them did not take it.

    The shipper offers a refused batch again as the same list: the sinks that took it already are skipped, so
    a sink that is down for an hour does not make the others write the same batch at every retry."""

    def __init__(self, sinks: list[Sink]) -> None:
        self.sinks = sinks
        self.name = "+".join(s.name for s in sinks)
        self._batch: Sequence[Encoded] | None = None
        self._took: set[int] = set()

    def deliver(self, batch: Sequence[Encoded]) -> None:
        if batch is not self._batch:
            self._batch, self._took = batch, set()
        for number, sink in enumerate(self.sinks):
            if number not in self._took:
                sink.deliver(batch)
                self._took.add(number)


class PredictionLog:
    """A claimed buffer and its shipper; ``writer`` is the claimed number (sinks name their files by it)."""

    def __init__(self, buffer: DiskBuffer, shipper: BaseProcess, writer: int, lock_fd: int) -> None:
        self.buffer = buffer
        self.shipper = shipper
        self.writer = writer
        self._lock_fd = lock_fd

    @classmethod
    def open(
        cls, root: Path, make_sink: Callable[[int], Sink], *, max_bytes: int = 512 << 20, idle_s: float = 0.5
    ) -> PredictionLog:
        """Claim the lowest free ``root/<n>`` and start shipping it to ``make_sink(n)`` (files of different
        buffers never collide: sinks name them by ``n``)."""
        root.mkdir(parents=True, exist_ok=True)
        writer = 0
        while True:
            directory = root / str(writer)
            directory.mkdir(exist_ok=True)
            descriptor = os.open(directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(descriptor)
                writer += 1
                continue
            break
        buffer = DiskBuffer(directory, max_bytes=max_bytes)
        shipper = multiprocessing.get_context("spawn").Process(
            target=ship_forever, args=(directory, make_sink, writer, os.getpid(), idle_s),
            name=f"legion-shipper-{writer}", daemon=True,
        )  # fmt: skip
        shipper.start()
        return cls(buffer, shipper, writer, descriptor)

    def predictions(self, batch: Sequence[bytes]) -> bool:
        """Append predictions (``entries.prediction``: the shipper makes their ``request_response`` and
        ``response_body`` records) in one write; False when the buffer was full."""
        return self.buffer.append_entries(batch, 2 * len(batch))

    def feedback(self, *, request_id: str, deployment: str, model: tuple[str, str] | None, payload: Any) -> bool:
        """Append a ``feedback`` record; False when the buffer was full."""
        name, version = model if model is not None else ("", "")
        return self.buffer.append(
            records.feedback(
                request_id=request_id, model_name=name, model_version=version, payload=payload, deployment=deployment
            )
        )

    def close(self, timeout_s: float = 5.0) -> None:
        """Deliver what is buffered (within ``timeout_s``), then let go of the buffer."""
        if self.shipper.is_alive() and self.shipper.pid is not None:
            os.kill(self.shipper.pid, signal.SIGTERM)
        self.shipper.join(timeout_s + 1.0)
        if self.shipper.is_alive():
            self.shipper.kill()
            self.shipper.join()
        self.buffer.close()
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

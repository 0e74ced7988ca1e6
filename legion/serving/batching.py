"""Adaptive batching: concurrent requests to one endpoint become one model call.

A queued request schedules a dispatch on the event loop. The dispatch waits while requests keep joining: it
looks again on the next turn of the loop (after the next poll of the sockets) as long as the last turn added
requests, and calls the model once a turn brings nothing new, the batch is full (``max_batch_size``), or its
oldest request has waited ``max_wait_s``. A request that arrives alone therefore goes to the model after one
quiet turn of the loop (microseconds), and under load the batch gathers everything that is already on its way,
so throughput rises with load instead of latency.

Behind a proxy the requests of a concurrent client do not arrive together: the proxy relays them one after the
other, so a turn of the loop can bring nothing although the rest are a fraction of a millisecond away, and the
batch would go out half full (measured: 18-21 rows per call behind the gateway instead of 32 direct, each call
costing the same fixed milliseconds). So when the previous batch merged several requests and this one has fewer,
the batch lingers: it waits for the next arrival up to ``linger_s``, again after each one, until it is as large
as the previous batch (then it goes at once), no request arrived for ``linger_s``, or the oldest has waited
``max_wait_s``. A lone request after a lone request never lingers; when the load drops, one batch lingers once
and the next one no longer expects more.

How long to linger: long enough for a relayed request that was held up because the proxy or the client lost its
core for a moment. On two cores shared by wrk, the gateway, its prediction-log shipper and the model server
(benchmarks/gateway.py at c32), 2 ms let 2-6 % of batches go out with a handful of rows, mostly one, each
costing a whole model call (about 5 ms for the census pipeline): 30.7-31.6 rows a call behind the gateway. 5 ms
brought those batches to about 1 % and the rows to 31.7-32.0 a call, with or without prediction logging.

The model is called on the event loop's thread: the census pipeline spends most of its call in Python holding
the GIL, so a worker thread would add hand-offs without adding parallelism (measured in benchmarks/serve.py).

If a merged call fails or returns something that cannot be split per request (``Raw``), each request of the
batch is retried alone, so one bad request never fails its neighbours.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass

from prometheus_client import Histogram

from legion.core.errors import LegionError, ModelError
from legion.model.endpoints import Raw, TypedEndpoint
from legion.model.table import Table


@dataclass(slots=True)
class _Item:
    table: Table
    future: asyncio.Future[Table | Raw]
    queued_at: float


@dataclass(frozen=True, slots=True)
class BatchObservers:
    """Histogram children (labels resolved once) that the batcher reports to."""

    queue_seconds: Histogram
    predict_seconds: Histogram
    batch_size: Histogram
    batch_rows: Histogram


class Batcher:
    """Queues tables for one endpoint and calls ``endpoint.predict`` on merged batches."""

    def __init__(
        self,
        endpoint: TypedEndpoint,
        observers: BatchObservers,
        max_batch_size: int,
        max_wait_s: float = 0.01,
        linger_s: float = 0.0,
    ) -> None:
        self._endpoint = endpoint
        self._observe = observers
        self._max_size = max_batch_size
        self._max_wait_s = max_wait_s
        self._linger_s = linger_s
        self._queue: deque[_Item] = deque()
        self._scheduled = False
        self._seen = 0
        self._expected = 1  # requests in the previous batch: how many a lingering batch waits for
        self._lingering: asyncio.TimerHandle | None = None

    async def predict(self, table: Table) -> Table | Raw:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Table | Raw] = loop.create_future()
        self._queue.append(_Item(table, future, time.perf_counter()))
        if not self._scheduled:
            self._scheduled = True
            self._seen = 0
            loop.call_soon(self._gather, loop)
        elif self._lingering is not None and len(self._queue) >= self._expected:
            self._lingering.cancel()  # as large as the previous batch: no reason to wait longer
            self._lingering = None
            loop.call_soon(self._dispatch)
        return await future

    def _gather(self, loop: asyncio.AbstractEventLoop) -> None:
        """Look again next turn while the batch grows; once a turn adds nothing, linger or dispatch."""
        size = len(self._queue)
        waited = time.perf_counter() - self._queue[0].queued_at
        if self._seen < size < self._max_size and waited < self._max_wait_s:
            self._seen = size
            loop.call_soon(self._gather, loop)
            return
        self._linger(loop, first=True)

    def _linger(self, loop: asyncio.AbstractEventLoop, first: bool = False) -> None:
        """Wait ``linger_s`` for the next request while the batch is smaller than the previous one and (after the
        first wait) requests keep arriving; otherwise, or once the oldest has waited long enough, go."""
        self._lingering = None
        size = len(self._queue)
        waited = time.perf_counter() - self._queue[0].queued_at
        grew = first or self._seen < size
        if grew and size < self._expected and self._linger_s > 0 and waited < self._max_wait_s:
            self._seen = size
            self._lingering = loop.call_later(min(self._linger_s, self._max_wait_s - waited), self._linger, loop)
            return
        self._dispatch()

    def _dispatch(self) -> None:
        self._scheduled = False
        self._expected = max(min(len(self._queue), self._max_size), 1)  # never above a batch's size
        while self._queue:
            batch = [self._queue.popleft() for _ in range(min(self._max_size, len(self._queue)))]
            batch = [item for item in batch if not item.future.cancelled()]
            if batch:
                self._run(batch)

    def _run(self, batch: list[_Item]) -> None:
        started = time.perf_counter()
        for item in batch:
            self._observe.queue_seconds.observe(started - item.queued_at)
        self._observe.batch_size.observe(len(batch))
        if len(batch) == 1:
            self._observe.batch_rows.observe(len(batch[0].table))
            self._settle_alone(batch[0])
            self._observe.predict_seconds.observe(time.perf_counter() - started)
            return
        first = batch[0].table
        if any(item.table.columns != first.columns or item.table.layout != first.layout for item in batch):
            for item in batch:  # an endpoint without a signature takes any columns: such tables do not merge
                self._settle_alone(item)
            self._observe.predict_seconds.observe(time.perf_counter() - started)
            return
        merged = Table.concat([item.table for item in batch])
        self._observe.batch_rows.observe(len(merged))
        try:
            result = self._endpoint.predict(merged)
        except Exception:  # retried per request below, which reports the error
            result = None
        self._observe.predict_seconds.observe(time.perf_counter() - started)
        if not isinstance(result, Table):
            for item in batch:  # the merged call failed or cannot be split: find out per request
                self._settle_alone(item)
            return
        start = 0
        for item in batch:
            stop = start + len(item.table)
            item.future.set_result(result.slice(start, stop))
            start = stop

    def _settle_alone(self, item: _Item) -> None:
        try:
            item.future.set_result(self._endpoint.predict(item.table))
        except LegionError as exc:
            item.future.set_exception(exc)
        except Exception as exc:  # a future left unset would hang its request forever
            item.future.set_exception(ModelError(f"{type(exc).__name__}: {exc}"))

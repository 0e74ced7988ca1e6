"""The batcher merges requests that arrive together and never holds back one that arrives alone."""

from __future__ import annotations

import asyncio

import numpy as np
import pandas as pd
import pytest

from legion.core.errors import ModelError
from legion.model.endpoints import Raw, TypedEndpoint
from legion.model.manifest import ColumnSpec, EndpointSpec
from legion.model.table import Table
from legion.serving.batching import Batcher, BatchObservers
from legion.serving.metrics import ServerMetrics

pytestmark = pytest.mark.anyio


class Recording:
    """The model side: records the row count of every call; fails on negative input."""

    def __init__(self, raw: bool = False) -> None:
        self.calls: list[int] = []
        self.raw = raw

    def __call__(self, frame: pd.DataFrame) -> object:
        self.calls.append(len(frame))
        if (frame["x"] < 0).any():
            raise ValueError("negative")
        if self.raw:
            return {"constant": 1}
        return {"y": frame["x"].to_numpy() * 10}


def make_batcher(
    model: Recording, max_batch_size: int = 64, *, max_wait_s: float = 0.01, linger_s: float = 0.0
) -> Batcher:
    spec = EndpointSpec(artifact="x", columns=[ColumnSpec(name="x", type="int64")])
    metrics = ServerMetrics()
    labels = ("m", "1", "default")
    observers = BatchObservers(
        metrics.queue_seconds.labels(*labels),
        metrics.predict_seconds.labels(*labels),
        metrics.batch_size.labels(*labels),
        metrics.batch_rows.labels(*labels),
    )
    return Batcher(TypedEndpoint("default", spec, model), observers, max_batch_size, max_wait_s, linger_s=linger_s)


def table(*values: int) -> Table:
    return Table(("x",), (np.array(values),))


async def test_requests_arriving_together_make_one_call() -> None:
    model = Recording()
    batcher = make_batcher(model)
    results = await asyncio.gather(*(batcher.predict(table(i, i)) for i in range(10)))
    assert model.calls == [20]
    for i, result in enumerate(results):
        assert isinstance(result, Table)
        assert result.column_lists() == [[i * 10, i * 10]]


async def test_a_lone_request_goes_at_once() -> None:
    model = Recording()
    batcher = make_batcher(model)
    result = await batcher.predict(table(7))
    assert model.calls == [1]
    assert isinstance(result, Table)


async def test_requests_still_arriving_join_the_batch_until_a_quiet_turn() -> None:
    model = Recording()
    batcher = make_batcher(model)
    loop = asyncio.get_running_loop()
    pending: list[asyncio.Task[Table | Raw]] = []

    def arrive(remaining: int) -> None:
        """One request per loop turn, like a load generator answering each response."""
        pending.append(loop.create_task(batcher.predict(table(remaining))))
        if remaining > 1:
            loop.call_soon(arrive, remaining - 1)

    arrive(5)
    while len(pending) < 5:
        await asyncio.sleep(0)
    await asyncio.gather(*pending)
    assert model.calls == [5]
    await batcher.predict(table(1))  # after the quiet turn: a batch of its own
    assert model.calls == [5, 1]


async def test_batches_respect_the_size_limit() -> None:
    model = Recording()
    batcher = make_batcher(model, max_batch_size=4)
    await asyncio.gather(*(batcher.predict(table(i)) for i in range(10)))
    assert model.calls == [4, 4, 2]


async def test_a_failing_request_fails_alone() -> None:
    model = Recording()
    batcher = make_batcher(model)
    results = await asyncio.gather(batcher.predict(table(1)), batcher.predict(table(-1)), batcher.predict(table(2)),
                                   return_exceptions=True)  # fmt: skip
    assert model.calls == [3, 1, 1, 1]  # the merged call, then each alone
    assert isinstance(results[1], ModelError)
    assert "ValueError: negative" in str(results[1])
    assert [r.column_lists() for r in (results[0], results[2]) if isinstance(r, Table)] == [[[10]], [[20]]]


async def test_answers_that_cannot_be_split_are_computed_per_request() -> None:
    model = Recording(raw=True)
    batcher = make_batcher(model)
    results = await asyncio.gather(batcher.predict(table(1)), batcher.predict(table(2)))
    assert model.calls == [2, 1, 1]
    assert all(isinstance(r, Table) and r.records() == [{"constant": 1}] for r in results)


async def turns(count: int = 5) -> None:
    """Let the loop run ``count`` turns: enough for anything scheduled with call_soon, never for a timer."""
    for _ in range(count):
        await asyncio.sleep(0)


async def arrive_apart(batcher: Batcher, count: int, gap_s: float) -> list[asyncio.Task[Table | Raw]]:
    """``count`` requests ``gap_s`` apart (a proxy relaying them one after the other)."""
    tasks = []
    for i in range(count):
        if i:
            await asyncio.sleep(gap_s)
        tasks.append(asyncio.create_task(batcher.predict(table(i))))
    return tasks


@pytest.mark.parametrize(("linger_s", "calls"), [(0.0, [4, 1, 1, 1, 1]), (5.0, [4, 4])])
async def test_behind_a_proxy_a_batch_lingers_for_as_many_as_the_previous_one(linger_s: float,
                                                                              calls: list[int]) -> None:  # fmt: skip
    model = Recording()
    batcher = make_batcher(model, max_wait_s=10.0, linger_s=linger_s)
    await asyncio.gather(*(batcher.predict(table(i)) for i in range(4)))
    tasks = await arrive_apart(batcher, 4, gap_s=0.003)  # each a quiet turn after the one before
    await turns()  # the fourth makes the batch as large as the previous one: it goes without waiting for a timer
    assert model.calls == calls
    assert [t.result().column_lists() for t in tasks] == [[[i * 10]] for i in range(4)]  # type: ignore[union-attr]


async def test_a_lone_request_after_a_lone_request_never_lingers() -> None:
    model = Recording()
    batcher = make_batcher(model, max_wait_s=10.0, linger_s=5.0)
    for expected in ([1], [1, 1]):
        task = asyncio.create_task(batcher.predict(table(1)))
        await turns()
        assert model.calls == expected
        assert task.done()


async def test_when_the_load_drops_one_batch_lingers_then_none() -> None:
    model = Recording()
    batcher = make_batcher(model, max_wait_s=10.0, linger_s=0.02)
    await asyncio.gather(*(batcher.predict(table(i)) for i in range(4)))
    await batcher.predict(table(7))  # expected 4, nothing else comes: goes after the linger with what it has
    assert model.calls == [4, 1]
    task = asyncio.create_task(batcher.predict(table(8)))
    await turns()  # the previous batch was a lone request: no lingering now
    assert model.calls == [4, 1, 1]
    assert task.done()


async def test_lingering_never_holds_a_request_past_the_longest_wait() -> None:
    model = Recording()
    batcher = make_batcher(model, max_wait_s=0.02, linger_s=5.0)
    await asyncio.gather(*(batcher.predict(table(i)) for i in range(4)))
    await asyncio.wait_for(batcher.predict(table(7)), timeout=2.0)  # a linger of 5 s would time this out
    assert model.calls == [4, 1]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"

"""The gateway's ``PredictionRecorder`` on its own: a call returns once its entry is in the buffer, and the calls
answered in one turn of the event loop share one write."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from legion.feedback.entries import ModelCall
from legion.feedback.log import PredictionLog
from legion.feedback.records import REQUEST_RESPONSE
from legion.feedback.sinks import LocalSink
from legion.gateway.predictions import PredictionRecorder
from legion.gateway.table import Deployment
from legion.gateway.upstream import UpstreamResponse

pytestmark = pytest.mark.anyio

CENSUS = Deployment("census", "Ready", 1, ("http://127.0.0.1:1",), "census", "1.0")
ANSWER = UpstreamResponse(200, [(b"content-type", b"application/json"), (b"model-version", b"1.0")], b'{"p": [1]}')


async def opened(tmp_path: Path, max_bytes: int = 1 << 20) -> PredictionRecorder:
    return PredictionRecorder(
        PredictionLog.open(tmp_path / "buffer", functools.partial(LocalSink, tmp_path / "sink"), max_bytes=max_bytes)
    )


@pytest.fixture
async def recorder(tmp_path: Path) -> AsyncIterator[PredictionRecorder]:
    made = await opened(tmp_path)
    yield made
    await made.close()


async def call(recorder: PredictionRecorder, number: int) -> int:
    """Log one call; how many records the buffer had taken when it returned."""
    await recorder.prediction(ModelCall(
        request_id=b"r%d" % number, deployment=CENSUS.id, model_name="census", model_version="1.0", method="POST",
        path=b"/api/model/invoke", headers=[(b"content-type", b"application/json")], body=b'{"x": 1}',
        content_type=b"application/json", status=ANSWER.status, latency_s=0.01, answer_headers=ANSWER.headers,
        answer=ANSWER.body,
    ))  # fmt: skip
    return recorder.log.buffer.appended


async def test_calls_answered_together_share_one_write_and_return_after_it(recorder: PredictionRecorder) -> None:
    taken = await asyncio.gather(*(call(recorder, i) for i in range(32)))
    buffer = recorder.log.buffer
    assert taken == [64] * 32, "each call returned once all 32 predictions were in the buffer"
    assert buffer.writes == 1
    assert await call(recorder, 32) == 66 and buffer.writes == 2, "a call in a later turn: a write of its own"
    records, _ = buffer.read()
    exchanges = [r.value()["request_id"] for r in records if r.place.tag == REQUEST_RESPONSE]
    assert sorted(exchanges) == sorted(f"r{i}" for i in range(33))


async def test_a_caller_cancelled_while_waiting_does_not_hold_up_the_others(recorder: PredictionRecorder) -> None:
    tasks = [asyncio.create_task(call(recorder, i)) for i in range(3)]
    await asyncio.sleep(0)  # one turn: all three appended their entries and wait for the write
    tasks[1].cancel()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[1], asyncio.CancelledError)
    assert done[0] == done[2] == 6, "its record is written all the same"


async def test_a_full_buffer_drops_and_counts_without_failing_the_calls(tmp_path: Path) -> None:
    recorder = await opened(tmp_path, max_bytes=100)
    try:
        assert await asyncio.gather(*(call(recorder, i) for i in range(4))) == [0] * 4
        assert (recorder.dropped, recorder.log.buffer.dropped) == (4, 8), "predictions, records"
    finally:
        await recorder.close()


async def test_the_entry_of_a_call_cancelled_while_it_yielded_is_written_on_close(tmp_path: Path) -> None:
    recorder = await opened(tmp_path)
    task = asyncio.create_task(call(recorder, 1))
    await asyncio.sleep(0)  # the call added its entry and yields
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    buffer = recorder.log.buffer
    assert buffer.appended == 0
    await recorder.close()
    assert buffer.appended == 2

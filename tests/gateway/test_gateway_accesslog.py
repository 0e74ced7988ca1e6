"""The gateway's access log: the lines of one loop turn go out in one write."""

import asyncio
import io
import json

import pytest

from legion.gateway.accesslog import AccessLog


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.mark.anyio
async def test_access_log_lines_of_one_loop_turn_go_out_in_one_write() -> None:
    stream = io.StringIO()
    writes: list[str] = []
    stream.write = writes.append  # type: ignore[method-assign]  # count the writes
    log = AccessLog(stream)
    for number in range(3):
        log.write({"requestId": f"r{number}", "status": 200})
    assert writes == []
    await asyncio.sleep(0)
    assert len(writes) == 1
    lines = [json.loads(line) for line in writes[0].splitlines()]
    assert [line["requestId"] for line in lines] == ["r0", "r1", "r2"]
    assert all(line["logger"] == "legion.gateway.access" and line["level"] == "info" for line in lines)


def test_access_log_without_a_running_loop_writes_at_once() -> None:
    stream = io.StringIO()
    AccessLog(stream).write({"requestId": "alone"})
    assert json.loads(stream.getvalue())["requestId"] == "alone"

"""The gateway's own pieces of the hot path: answers in one write, access-log lines in one write per loop turn."""

import asyncio
import io
import json
from typing import Any

import pytest
import uvicorn
from uvicorn.server import ServerState

from legion.gateway.accesslog import AccessLog
from legion.gateway.wire import CoalescingHttpToolsProtocol


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class RecordingTransport(asyncio.Transport):
    """A transport that keeps what is written, one entry per write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 5090)}.get(name, default)

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


async def _app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def _protocol(loop: asyncio.AbstractEventLoop) -> CoalescingHttpToolsProtocol:
    config = uvicorn.Config(_app, http=CoalescingHttpToolsProtocol, lifespan="off", log_config=None)
    config.load()
    return CoalescingHttpToolsProtocol(config, ServerState(), {}, _loop=loop)


@pytest.mark.anyio
async def test_an_answer_reaches_the_socket_in_one_write_and_nothing_is_lost_on_close() -> None:
    loop = asyncio.get_running_loop()
    protocol = _protocol(loop)
    transport = RecordingTransport()
    protocol.connection_made(transport)
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(transport.writes) == 1
    head, body = transport.writes[0].split(b"\r\n\r\n", 1)
    assert head.startswith(b"HTTP/1.1 200 OK") and body == b"ok"
    protocol.data_received(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    for _ in range(10):
        await asyncio.sleep(0)
    assert len(transport.writes) == 2 and transport.writes[1].endswith(b"\r\n\r\nok") and transport.closed


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

"""One ``send`` per answer: uvicorn's httptools protocol with the writes of one loop turn joined.

uvicorn writes an answer's status line and headers on ``http.response.start`` and its body on
``http.response.body``: two ``send`` system calls, two TCP segments and two wake-ups of the caller for every
answer. The gateway sends both messages in the same turn of the event loop, so ``CoalescingHttpToolsProtocol``
hands uvicorn a transport that keeps what is written during a turn and passes it on as one write at the end of
that turn (``loop.call_soon``). Measured with ``benchmarks/gateway.py`` (profile under 32 concurrent
callers): the head's ``send`` was the largest single item of the gateway's CPU time.

Everything else goes straight to uvicorn's transport; ``close`` and ``write_eof`` pass on what is kept first,
so nothing written is lost or reordered. Used by ``runner.serve`` through ``uvicorn.Config(http=...)``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class _CoalescingTransport:
    """A transport whose writes within one loop turn reach the socket as one write."""

    __slots__ = ("_kept", "_loop", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._kept: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not self._kept:
            self._loop.call_soon(self.flush)
        self._kept.append(data)

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        kept = self._kept
        if not kept:
            return
        self._kept = []
        self._transport.write(kept[0] if len(kept) == 1 else b"".join(kept))

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(len(data) for data in self._kept)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:  # is_closing, get_extra_info, pause_reading, abort, ...
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol over a ``_CoalescingTransport``."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]  # uvicorn's own override
        super().connection_made(_CoalescingTransport(transport, self.loop))  # type: ignore[arg-type]  # duck-typed transport

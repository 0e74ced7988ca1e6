"""Calls to model server replicas: HTTP/1.1 over keep-alive connection pools, one pool per replica.

A lean client on asyncio protocols with httptools' response parser, written for the one thing the gateway does
(send a request whose body is already read, get the whole answer back). A request costs one ``write`` and the
parser callbacks; no task, no stream objects. The benchmark (``benchmarks/gateway.py``) shows why not httpx:
httpx's per-request work alone is about the whole latency budget of the gateway.

Failures say how far the request got, because that decides whether it may be sent to another replica:

    UpstreamError
    ├── ConnectFailedError        no connection: nothing reached the replica (always safe to retry)
    ├── ConnectionDroppedError    the connection closed before the whole answer; ``received`` says whether any
    │                             byte of an answer came back, ``unread`` whether the replica's process cannot
    │                             have read the whole request (a reset with no answer)
    ├── UpstreamTimeoutError      no complete answer within the timeout (the connection is closed)
    └── UpstreamProtocolError     the replica's answer is not HTTP

Pooled connections are kept for ``idle_timeout_s`` at most, below the model server's keep-alive timeout, so the
gateway never sends a request on a connection the replica is closing at that moment.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import cast
from urllib.parse import urlsplit

import httptools


class UpstreamError(Exception):
    """A replica could not be called; translated to a ``LegionError`` by the proxy."""


class ConnectFailedError(UpstreamError):
    pass


class ConnectionDroppedError(UpstreamError):
    def __init__(self, message: str, *, received: bool, reset: bool) -> None:
        super().__init__(message)
        self.received = received
        self.reset = reset

    @property
    def unread(self) -> bool:
        """The replica's process never read the whole request, so its model cannot have run it.

        A TCP reset with no answer means the replica's kernel threw away bytes its process had not read (a
        socket closed with unread data is reset; one closed after reading everything sends an orderly FIN). We
        send one request per connection at a time, so those bytes were this request's.
        """
        return self.reset and not self.received


class UpstreamTimeoutError(UpstreamError):
    pass


class UpstreamProtocolError(UpstreamError):
    pass


@dataclass(frozen=True, slots=True)
class UpstreamResponse:
    status: int
    headers: list[tuple[bytes, bytes]]  # names lower-cased
    body: bytes


class _Connection(asyncio.Protocol):
    """One keep-alive connection; at most one request on it at a time."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.waiter: asyncio.Future[UpstreamResponse] | None = None
        self.headers: list[tuple[bytes, bytes]] = []
        self.body: list[bytes] = []
        self.status = 0
        self.received = False
        self.head_only = False
        self.keep_alive = True
        self.closed = False
        self.idle_since = 0.0

    # --- asyncio callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's transports do not subclass asyncio's

    def data_received(self, data: bytes) -> None:
        self.received = True
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(UpstreamProtocolError(f"the replica's answer is not HTTP: {exc}"))
            self.close()

    def eof_received(self) -> bool:
        return False  # close our side too

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            why = "the replica closed the connection" if exc is None else f"the connection broke: {exc}"
            reset = isinstance(exc, ConnectionResetError | BrokenPipeError)
            self.waiter.set_exception(ConnectionDroppedError(why, received=self.received, reset=reset))

    # --- httptools callbacks
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers.append((name.lower(), value))

    def on_headers_complete(self) -> None:
        self.status = self.parser.get_status_code()
        self.keep_alive = self.parser.should_keep_alive()
        if self.head_only:  # no body follows an answer to HEAD; the parser cannot know that
            self.keep_alive = False
            self.on_message_complete()

    def on_body(self, body: bytes) -> None:
        self.body.append(body)

    def on_message_complete(self) -> None:
        waiter = self.waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(UpstreamResponse(self.status, self.headers, b"".join(self.body)))

    # --- use
    def _fail(self, exc: UpstreamError) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(exc)

    def _expire(self) -> None:
        self._fail(UpstreamTimeoutError("the replica did not answer in time"))
        self.close()

    def close(self) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.close()

    async def exchange(self, request: bytes, head_only: bool, timeout_s: float) -> UpstreamResponse:
        assert self.transport is not None
        self.headers = []
        self.body = []
        self.received = False
        self.head_only = head_only
        waiter: asyncio.Future[UpstreamResponse] = self.loop.create_future()
        self.waiter = waiter
        timer = self.loop.call_later(timeout_s, self._expire)
        try:
            self.transport.write(request)
            return await waiter
        finally:
            timer.cancel()
            self.waiter = None
            if not waiter.done() or waiter.cancelled() or waiter.exception() is not None:
                self.close()  # interrupted half way: the connection's state is unknown


class UpstreamPool:
    """Keep-alive connections to one replica (``base_url`` like ``http://127.0.0.1:41234``)."""

    def __init__(self, base_url: str, *, connect_timeout_s: float, max_idle: int, idle_timeout_s: float) -> None:
        parts = urlsplit(base_url)
        self.base_url = base_url
        self.unusable = None if parts.scheme == "http" and parts.hostname else f"{base_url!r} is not an http:// URL"
        self.host = parts.hostname or ""
        self.port = parts.port or 80
        self.host_header = parts.netloc.encode("latin-1")
        self.connect_timeout_s = connect_timeout_s
        self.max_idle = max_idle
        self.idle_timeout_s = idle_timeout_s
        self._idle: list[_Connection] = []
        self._closed = False

    def _take(self) -> _Connection | None:
        now = time.monotonic()
        while self._idle:
            connection = self._idle.pop()
            if not connection.closed and now - connection.idle_since < self.idle_timeout_s:
                return connection
            connection.close()
        return None

    async def _connect(self) -> _Connection:
        if self.unusable is not None:
            raise ConnectFailedError(f"cannot connect to a replica: {self.unusable}")
        loop = asyncio.get_running_loop()
        try:
            _, connection = await asyncio.wait_for(
                loop.create_connection(lambda: _Connection(loop), self.host, self.port), self.connect_timeout_s
            )
        except (OSError, TimeoutError) as exc:
            raise ConnectFailedError(f"cannot connect to {self.base_url}: {exc!r}") from None
        return connection

    async def request(
        self,
        method: bytes,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: bytes,
        timeout_s: float,
    ) -> UpstreamResponse:
        """Send one request; ``headers`` must not carry ``host``, ``content-length`` or hop-by-hop fields."""
        lines = [method, b" ", target, b" HTTP/1.1\r\nhost: ", self.host_header]
        lines.append(b"\r\ncontent-length: %d\r\n" % len(body))
        for name, value in headers:
            lines += (name, b": ", value, b"\r\n")
        lines += (b"\r\n", body)
        data = b"".join(lines)
        connection = self._take() or await self._connect()
        response = await connection.exchange(data, method == b"HEAD", timeout_s)
        if connection.keep_alive and not connection.closed and not self._closed and len(self._idle) < self.max_idle:
            connection.idle_since = time.monotonic()
            self._idle.append(connection)
        else:
            connection.close()
        return response

    def close_idle(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    def close(self) -> None:
        """Close the kept connections; requests in flight finish on theirs, which are then closed."""
        self._closed = True
        self.close_idle()

"""``head_limited(limit)``: uvicorn's httptools protocol, refusing a request head over ``limit`` bytes with 431.

uvicorn reads a request's head (the request line and every header) whole before the app sees it, however long it
is: llhttp has no limit, and httptools joins a header that arrives in pieces into one bytes object. So a client
with no credentials could make a service hold megabytes per connection before it answered 401. Envoy refuses heads
over 60 KiB (``max_request_headers_kb``) with 431; ``http.http_server`` serves every Legion service through the
class made here, with the limit of the service's settings (``max_header_bytes``, 64 KiB by default).

How, at a cost under a microsecond per normal request (``benchmarks/heads.py``): the bytes that arrive while a
head is being read are counted in ``data_received`` *before* httptools sees them. When a read takes the count over
the limit, the head either ends inside that read within the limit (it is parsed as usual) or it does not, and the
read is refused unparsed: the service never holds more of a head than the limit. The count starts again when a
request has been read whole; of pipelined requests (several in one read) the head that starts in the same read as
the previous request ends is counted from the next read on, so such a head may pass the limit by at most one read
(uvloop reads at most 256 KiB at a time): a bound, not a hole.

The refusal is a 431 with a short JSON body (``{"error": ...}``, or ``application/problem+json`` for the
management API), ``connection: close``, then a lingering close as Envoy and nginx do: the write side is shut
(FIN) and what the client still sends is read and dropped for ``LINGER_S`` at most. Closing at once, with unread
data in the socket, makes the kernel send a reset, which may make the client's TCP stack drop the 431 before the
client reads it (RFC 9112 §9.6). Requests that the connection was still answering (pipelining) come first:
then there is no 431 to send in order, and the connection is closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, ClassVar, Literal

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

from legion.core.errors import HeadersTooLargeError

ErrorFormat = Literal["json", "problem"]
"""How a service words an error it answers before its app runs: ``{"error": ...}`` (the model APIs, the gateway)
or RFC 9457 ``application/problem+json`` (the management API)."""

LINGER_S = 1.0
"""How long a refused connection keeps reading (and dropping) what the client still sends (Envoy's
``delayed_close_timeout`` is 1 s too)."""

_END_OF_HEAD = b"\r\n\r\n"
# uvicorn's handlers, called without ``super()``: they run on every request, where each lookup counts
_feed = HttpToolsProtocol.data_received
_headers_complete = HttpToolsProtocol.on_headers_complete
_message_complete = HttpToolsProtocol.on_message_complete
log = logging.getLogger(__name__)


def head_limited(limit: int, errors: ErrorFormat = "json") -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol refusing heads over ``limit`` bytes; pass it as ``uvicorn.Config(http=...)``.

    >>> uvicorn.Config(app, http=head_limited(64 * 1024))
    """
    error = HeadersTooLargeError(f"the request's header fields are over the limit of {limit} bytes")
    if errors == "problem":
        media_type = b"application/problem+json"
        document: dict[str, object] = {"type": "about:blank", "title": error.title, "status": error.status,
                                       "detail": error.detail}  # fmt: skip
    else:
        media_type, document = b"application/json", error.to_dict()
    body = json.dumps(document).encode()

    class HeadLimitedProtocol(_HeadLimitedProtocol):
        max_head_bytes = limit
        refusal_headers = (
            b"content-type: " + media_type + b"\r\n"
            b"content-length: " + str(len(body)).encode() + b"\r\n"
            b"connection: close\r\n\r\n"
        )
        refusal_body = body

    return HeadLimitedProtocol


class _HeadLimitedProtocol(HttpToolsProtocol):
    """The counting and the refusal; ``head_limited`` sets the limit and the answer on a subclass."""

    max_head_bytes: ClassVar[int]
    refusal_headers: ClassVar[bytes]
    refusal_body: ClassVar[bytes]

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        self._in_head = True
        """Between the end of a request and the end of the next one's head: the bytes read are head bytes."""
        self._head_bytes = 0
        self._last_read = b""
        """The previous read of this head: its end and the next read's start may hold the head's last CRLF CRLF."""
        self._linger: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self._linger is not None:
            return  # the rest of a refused request: read, so that closing sends no reset, and dropped
        if self._in_head:
            before = self._head_bytes
            self._head_bytes = before + len(data)
            if self._head_bytes > self.max_head_bytes and self._over_limit(before, data):
                self._refuse()
                return
            self._last_read = data
        _feed(self, data)

    def _over_limit(self, before: int, data: bytes) -> bool:
        """Whether the head does not end within the limit, given the ``before`` bytes already read of it."""
        carried = self._last_read[-(len(_END_OF_HEAD) - 1) :]
        end = (carried + data).find(_END_OF_HEAD)
        return end < 0 or before - len(carried) + end + len(_END_OF_HEAD) > self.max_head_bytes

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._last_read = b""
        _headers_complete(self)

    def on_message_complete(self) -> None:
        # uvicorn's own handler returns early for a request already answered, so the count is kept here
        self._in_head = True
        self._head_bytes = 0
        _message_complete(self)

    def _refuse(self) -> None:
        self._unset_keepalive_if_required()
        self._last_read = b""
        peer = f" from {self.client[0]}:{self.client[1]}" if self.client else ""
        log.warning("refused a request head over %d bytes%s (431)", self.max_head_bytes, peer)
        if self.cycle is not None and not self.cycle.response_complete:
            self.transport.close()  # an earlier request's answer would have to come first
            return
        content = [STATUS_LINE[HeadersTooLargeError.status]]
        content.extend(name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers)
        content.extend([self.refusal_headers, self.refusal_body])
        self.transport.write(b"".join(content))
        self._linger = self.loop.call_later(LINGER_S, self.transport.close)
        if self.transport.can_write_eof():
            self.transport.write_eof()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._linger is not None:
            self._linger.cancel()
        super().connection_lost(exc)

"""A raw HTTP/1.1 client on a socket, for what httpx will not do: send a request head of any size in pieces, and
notice an answer that comes while the request is still going out.

    answer = exchange(url, oversized_head(url, 64 << 20))   # a 64 MiB head that never ends
    assert answer.status == 431 and answer.sent < 64 << 20   # answered long before the client was done
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

PIECE_BYTES = 64 * 1024
SOCKET_TIMEOUT_S = 60.0
"""A guard against a server that never answers, not a measurement."""


@dataclass(frozen=True)
class RawAnswer:
    status: int
    headers: dict[str, str]
    body: bytes
    sent: int
    """Bytes of the request the client had sent when it saw the answer."""
    ended: bool
    """An answer with ``connection: close``: whether the server then ended the connection (EOF or reset)."""


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


def head_of_size(url: str, size: int, *, method: str = "GET", path: str = "/", extra: str = "") -> bytes:
    """A complete request head of exactly ``size`` bytes (request line, headers, final CRLF CRLF), padded by one
    ``X-Padding`` header; ``extra`` holds more header lines (each ending in CRLF)."""
    host, port = address(url)
    start = f"{method} {path} HTTP/1.1\r\nHost: {host}:{port}\r\n{extra}X-Padding: ".encode()
    padding = size - len(start) - len(b"\r\n\r\n")
    assert padding >= 0, f"a head of {size} bytes cannot hold its own request line"
    return start + b"a" * padding + b"\r\n\r\n"


def oversized_head(url: str, size: int, *, path: str = "/") -> Iterator[bytes]:
    """The pieces of a head that goes on for ``size`` bytes and never ends: one header that keeps growing."""
    host, port = address(url)
    start = f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nX-Padding: ".encode()
    yield start
    remaining = size - len(start)
    while remaining > 0:
        piece = min(PIECE_BYTES, remaining)
        yield b"a" * piece
        remaining -= piece


def exchange(url: str, pieces: bytes | Iterable[bytes]) -> RawAnswer:
    """Send ``pieces`` one after the other, stopping as soon as an answer has come; then read that answer whole."""
    with socket.create_connection(address(url), timeout=SOCKET_TIMEOUT_S) as sock:
        sent = 0
        for piece in [pieces] if isinstance(pieces, bytes) else pieces:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(piece)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(piece)
        return read_answer(sock, sent)


def send_apart(sock: socket.socket, pieces: Iterable[bytes], deadline_s: float = 30.0) -> None:
    """Send each piece only once the server has read the one before, so that each is a read of its own.

    The kernel says how much of a loopback connection the server has not read yet (``rx_queue`` of its socket in
    ``/proc/net/tcp``): poll it, with a deadline, until it is zero."""
    for piece in pieces:
        sock.sendall(piece)
        end = time.monotonic() + deadline_s
        while _unread_by_server(sock):
            assert time.monotonic() < end, "the server did not read what was sent"
            time.sleep(0.002)


def _unread_by_server(sock: socket.socket) -> int:
    """Bytes sent on ``sock`` that the server's side of the connection holds unread (IPv4 loopback)."""
    client, server = sock.getsockname(), sock.getpeername()
    ours, theirs = _proc_address(client), _proc_address(server)
    with open("/proc/net/tcp") as table:
        for line in table.readlines()[1:]:
            fields = line.split()
            if (fields[1], fields[2]) == (theirs, ours):
                return int(fields[4].split(":")[1], 16)
    raise AssertionError(f"no server socket for {client} in /proc/net/tcp")


def _proc_address(address: tuple[str, int]) -> str:
    """``127.0.0.1:5000`` as ``/proc/net/tcp`` writes it: ``0100007F:1388`` (the address in host byte order)."""
    packed = socket.inet_aton(address[0])
    return f"{int.from_bytes(packed, 'little'):08X}:{address[1]:04X}"


def read_answer(sock: socket.socket, sent: int = 0) -> RawAnswer:
    """The next answer on ``sock`` (its body by ``content-length``)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the connection ended before an answer's head: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.strip().lower(): value.strip() for name, value in (line.split(":", 1) for line in lines)}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        assert chunk, "the connection ended inside the answer's body"
        body += chunk
    ended = headers.get("connection") == "close" and _ends(sock)
    return RawAnswer(int(status_line.split()[1]), headers, body[:length], sent, ended)


def _ends(sock: socket.socket) -> bool:
    """Read (and drop) until the server ends the connection; False if it keeps it open past the socket timeout."""
    try:
        while sock.recv(65536):
            pass
    except ConnectionResetError:
        pass
    except TimeoutError:
        return False
    return True

"""The request-head limit of ``legion.hosting``: a real uvicorn server (``http_server``) on 127.0.0.1, port 0, in a
thread, and a raw socket client. A head over the limit is a 431 answered before the client is done sending it;
one at the limit passes, however it is cut into reads; the count starts again with each request of a connection.
"""

from __future__ import annotations

import itertools
import json
import socket
import threading
from collections.abc import Iterator

import pytest
from starlette.types import Receive, Scope, Send

from legion.core.net import bind, url_of
from legion.hosting.http import HttpOptions, http_server
from tests.support.rawhttp import address, exchange, head_of_size, oversized_head, read_answer, send_apart
from tests.support.server import wait_until

LIMIT = 4096


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers 200 with the size of the body it read."""
    if scope["type"] == "lifespan":
        while (message := await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message.get("body", b""))
        more = message.get("more_body", False)
    body = str(size).encode()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(body))]})
    await send({"type": "http.response.body", "body": body})


def running(options: HttpOptions) -> Iterator[str]:
    sock = bind("127.0.0.1", 0)
    server = http_server(app, options)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    wait_until(lambda: server.started, 30, "the server to start")
    try:
        yield url_of(sock)
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    yield from running(HttpOptions(log_level="warning", max_header_bytes=LIMIT))


@pytest.fixture(scope="module")
def problem_url() -> Iterator[str]:
    yield from running(HttpOptions(log_level="warning", max_header_bytes=LIMIT, errors="problem"))


def cut(data: bytes, *at: int) -> list[bytes]:
    """``data`` in pieces ending at the offsets ``at`` (sent one by one, so the server reads them apart)."""
    bounds = [0, *at, len(data)]
    return [data[a:b] for a, b in itertools.pairwise(bounds) if b > a]


def send_in_reads(url: str, pieces: list[bytes]) -> int:
    """The status of the answer to ``pieces``, each read by the server apart from the others."""
    with socket.create_connection(address(url), timeout=60) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        send_apart(sock, pieces)
        return read_answer(sock).status


def test_a_head_at_the_limit_passes_and_one_byte_more_is_431(url: str) -> None:
    assert exchange(url, head_of_size(url, LIMIT)).status == 200
    refused = exchange(url, head_of_size(url, LIMIT + 1))
    assert refused.status == 431
    assert refused.headers["content-type"] == "application/json"
    assert json.loads(refused.body) == {"error": f"the request's header fields are over the limit of {LIMIT} bytes"}
    assert refused.headers["connection"] == "close"
    assert refused.ended


def test_a_head_with_its_body_in_one_read_is_judged_by_the_head_alone(url: str) -> None:
    body = b"x" * (4 * LIMIT)
    head = head_of_size(url, LIMIT, method="POST", extra=f"Content-Length: {len(body)}\r\n")
    passed = exchange(url, head + body)
    assert (passed.status, passed.body) == (200, str(len(body)).encode())
    over = head_of_size(url, LIMIT + 1, method="POST", extra=f"Content-Length: {len(body)}\r\n")
    assert exchange(url, over + body).status == 431


@pytest.mark.parametrize("split", [1, 2, 3], ids=lambda n: f"last-{n}-bytes-apart")
def test_the_end_of_a_head_cut_across_reads_is_found(url: str, split: int) -> None:
    head = head_of_size(url, LIMIT, method="POST", extra="Content-Length: 2000\r\n")
    # the head's final CRLF CRLF is cut between two reads, and the second read takes the count over the limit
    assert send_in_reads(url, cut(head + b"y" * 2000, len(head) - split)) == 200
    over = head_of_size(url, LIMIT + 1, method="POST", extra="Content-Length: 2000\r\n")
    assert send_in_reads(url, cut(over + b"y" * 2000, len(over) - split)) == 431


def test_the_count_starts_again_with_each_request_of_a_connection(url: str) -> None:
    with socket.create_connection(address(url), timeout=60) as sock:
        for _ in range(8):  # 8 heads of 3/4 of the limit: together well over it
            sock.sendall(head_of_size(url, LIMIT * 3 // 4))
            assert read_answer(sock).status == 200
        sock.sendall(head_of_size(url, LIMIT + 100))
        assert read_answer(sock).status == 431


def test_the_answer_comes_before_the_client_is_done_sending(url: str) -> None:
    total = 64 << 20
    answer = exchange(url, oversized_head(url, total))
    assert answer.status == 431
    assert answer.sent < total  # the server answered (and dropped the rest) without reading the head to its end
    assert answer.ended


def test_the_management_api_words_it_as_a_problem(problem_url: str) -> None:
    refused = exchange(problem_url, head_of_size(problem_url, 2 * LIMIT))
    assert refused.status == 431
    assert refused.headers["content-type"] == "application/problem+json"
    assert json.loads(refused.body) == {
        "type": "about:blank",
        "title": "Request header fields too large",
        "status": 431,
        "detail": f"the request's header fields are over the limit of {LIMIT} bytes",
    }

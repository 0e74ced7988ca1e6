"""Many requests, fast: ``hammer`` sends ``count`` requests over ``concurrency`` keep-alive connections.

A small HTTP/1.1 client on asyncio streams (httpx costs more CPU per request than the gateway does, and the
test machine has two cores), independent of the gateway's own upstream client. Each answer is returned as
``Answer(status, headers, body)``; a request that fails at the socket is an ``Answer`` with status 0, so a test
counts failures rather than dying on the first.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import orjson


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> object:
        return orjson.loads(self.body)


async def _read_answer(reader: asyncio.StreamReader) -> Answer:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Answer(status, headers, body)


async def hammer(
    url: str,
    count: int,
    *,
    concurrency: int = 16,
    method: str = "POST",
    body: bytes = b'{"columns": ["a"], "data": [[1]]}',
    headers: Mapping[str, str] | None = None,
    on_answer: Callable[[int, Answer], None] | None = None,
) -> list[Answer]:
    """Send ``count`` requests to ``url`` (path and query included) over ``concurrency`` connections."""
    parts = urlsplit(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    request = (f"{method} {target} HTTP/1.1\r\nhost: {parts.netloc}\r\ncontent-type: application/json\r\n"
               f"content-length: {len(body)}\r\n{extra}\r\n").encode() + body  # fmt: skip
    numbers = itertools.count()
    answers: list[Answer | None] = [None] * count

    async def worker() -> None:
        reader = writer = None
        while (number := next(numbers)) < count:
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
                assert reader is not None
                writer.write(request)
                answer = await asyncio.wait_for(_read_answer(reader), 30)
                if answer.headers.get("connection") == "close":
                    writer.close()
                    writer = None
            except (OSError, asyncio.IncompleteReadError, TimeoutError) as exc:
                answer = Answer(0, {}, repr(exc).encode())
                if writer is not None:
                    writer.close()
                writer = None
            answers[number] = answer
            if on_answer is not None:
                on_answer(number, answer)
        if writer is not None:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return [a for a in answers if a is not None]


def run_hammer(url: str, count: int, **options: object) -> list[Answer]:
    """``hammer`` from synchronous code."""
    return asyncio.run(hammer(url, count, **options))  # type: ignore[arg-type]

"""Head-limit benchmark: what refusing request heads over 64 KiB (``legion.hosting.heads``) costs a normal request.

Run ``python benchmarks/heads.py [--rounds N] [--requests N]`` from the repository root.

Every Legion service reads requests through ``head_limited``'s subclass of uvicorn's httptools protocol, which
counts the bytes of each head before httptools parses them. That is on the gateway's per-request path, so this
measures it where wrk could not see it (under a microsecond, against the ≈ 100 µs of CPU the gateway spends per
request): in process,
one protocol object per run fed the same gateway request (a census row, a 400-byte bearer token) ``--requests``
times over one keep-alive connection, each request answered by a minimal ASGI app on uvloop, with uvicorn's own
``HttpToolsProtocol`` and with the head-limited one in turns (their order swapped every other round). The table
gives the median over the rounds of the CPU microseconds per request (of this process: other tenants of
the machine move it much less than wall time) and of the paired ratio limited / stock.

Results: a table on stdout and ``benchmarks/results/heads-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import uvicorn
import uvloop
from _harness import machine_info
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from legion.hosting.heads import head_limited

RESULTS_DIR = Path(__file__).with_name("results")
BODY = json.dumps({
    "columns": ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
                "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country"],
    "data": [[31, "Private", 45781, "Masters", 14, "Never-married", "Prof-specialty", "Not-in-family", "White",
              "Female", 14084, 0, 50, "United-States"]],
}).encode()  # fmt: skip
REQUEST = (
    b"POST /model/census-income/api/model/invoke HTTP/1.1\r\nHost: 127.0.0.1:5090\r\nUser-Agent: wrk\r\n"
    b"Authorization: Bearer " + b"t" * 400 + b"\r\nContent-Type: application/json\r\n"
    b"Content-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY
)


async def app(scope: Any, receive: Any, send: Any) -> None:
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


class _Transport:
    """What the protocol needs of a socket's transport; counts the answers written."""

    def __init__(self) -> None:
        self.writes = 0

    def write(self, data: bytes) -> None:
        self.writes += 1

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"sockname": ("127.0.0.1", 5090), "peername": ("127.0.0.1", 40000)}.get(name, default)

    def is_closing(self) -> bool:
        return False

    def close(self) -> None: ...
    def pause_reading(self) -> None: ...
    def resume_reading(self) -> None: ...


def microseconds_per_request(protocol_class: type[HttpToolsProtocol], requests: int) -> float:
    loop = uvloop.new_event_loop()
    config = uvicorn.Config(app, http=protocol_class, lifespan="off", access_log=False, log_config=None)
    config.load()
    protocol = protocol_class(config=config, server_state=ServerState(), app_state={}, _loop=loop)
    transport = _Transport()
    protocol.connection_made(transport)  # type: ignore[arg-type]  # the parts of a transport it uses

    async def serve() -> None:
        for _ in range(requests):
            protocol.data_received(REQUEST)
            await asyncio.sleep(0)  # the app's task runs: it reads the body and answers
            await asyncio.sleep(0)

    try:
        loop.run_until_complete(serve())  # warm-up
        started = time.process_time_ns()
        loop.run_until_complete(serve())
        elapsed = time.process_time_ns() - started
    finally:
        loop.close()
    if transport.writes < 2 * requests:
        raise RuntimeError(f"{protocol_class.__name__} answered {transport.writes // 2} of {2 * requests} requests")
    return elapsed / requests / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15, help="interleaved rounds (default 15)")
    parser.add_argument("--requests", type=int, default=20000, help="requests per run (default 20000)")
    args = parser.parse_args(argv)
    started_at = datetime.now(UTC)
    variants = {"uvicorn httptools": HttpToolsProtocol, "head-limited (64 KiB)": head_limited(64 * 1024)}
    runs: dict[str, list[float]] = {name: [] for name in variants}
    for round_number in range(args.rounds):
        order = list(variants.items())
        for name, protocol_class in order if round_number % 2 else reversed(order):
            runs[name].append(microseconds_per_request(protocol_class, args.requests))
    stock, limited = runs.values()
    ratios = [b / a for a, b in zip(stock, limited, strict=True)]
    print(f"{'protocol':<24}{'µs/request (median)':>22}{'lowest':>10}{'highest':>10}")
    for name, values in runs.items():
        print(f"{name:<24}{statistics.median(values):>22.2f}{min(values):>10.2f}{max(values):>10.2f}")
    print(f"{'ratio limited / stock':<24}{statistics.median(ratios):>22.3f}{min(ratios):>10.3f}{max(ratios):>10.3f}")
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"heads-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {"benchmark": "heads", "started_at": started_at.isoformat(), "machine": machine_info(),
                "settings": {"rounds": args.rounds, "requests": args.requests, "request_bytes": len(REQUEST)},
                "runs_us_per_request": runs, "ratios": ratios}  # fmt: skip
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    print(f"saved {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

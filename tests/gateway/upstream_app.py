"""A stand-in replica for gateway tests that need to tell replicas apart, break one, or slow one down.

``python -m tests.gateway.upstream_app --name a [--mode ok|fail|hang]`` binds 127.0.0.1 port 0, prints
``listening on http://127.0.0.1:PORT`` like ``legion serve``, and answers every path with JSON saying who
answered and what it received (``fail``: 500; ``hang``: never answers model calls). Health paths answer 200
in every mode. A raw ASGI app on uvicorn: cheap enough that 10,000 requests measure the gateway, not it.
"""

from __future__ import annotations

import argparse
import asyncio

import orjson
import uvicorn

from legion.core.net import bind, url_of

HEALTH = {"/healthcheck", "/v2/health/ready", "/v2/health/live"}


def make_app(name: str, mode: str):  # type: ignore[no-untyped-def]
    async def app(scope, receive, send):  # type: ignore[no-untyped-def]
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        status = 200
        if scope["path"] not in HEALTH:
            if mode == "fail":
                status = 500
            elif mode == "hang":
                await asyncio.sleep(3600)
        answer = orjson.dumps({
            "name": name, "path": scope["path"], "query": scope["query_string"].decode(), "method": scope["method"],
            "headers": headers, "body": body.decode(errors="replace"),
        })  # fmt: skip
        out = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
        if "request-id" in headers:
            out.append((b"request-id", headers["request-id"].encode()))
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": answer})

    return app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--mode", choices=["ok", "fail", "hang"], default="ok")
    args = parser.parse_args()
    sock = bind("127.0.0.1", 0)
    print(f"listening on {url_of(sock)}", flush=True)
    config = uvicorn.Config(make_app(args.name, args.mode), loop="uvloop", http="httptools", access_log=False,
                            log_level="warning", lifespan="off", timeout_graceful_shutdown=1)  # fmt: skip
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()

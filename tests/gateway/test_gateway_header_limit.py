"""The gateway refuses a request head over its limit (``LEGION_GATEWAY_MAX_HEADER_BYTES``) with a JSON 431 before
it reads further, and before any token check: an unauthenticated client cannot make it hold a huge head."""

from __future__ import annotations

import json
from pathlib import Path

from tests.gateway.conftest import deployment, gateway_process, snapshot, write_routing
from tests.support.rawhttp import exchange, head_of_size, oversized_head

LIMIT = 16 * 1024


def test_a_head_over_the_limit_is_a_431_before_the_401(tmp_path: Path) -> None:
    routing = tmp_path / "routing.json"
    write_routing(routing, snapshot([deployment("toy", ["http://127.0.0.1:9"])]))
    with gateway_process(routing, env={"LEGION_GATEWAY_MAX_HEADER_BYTES": str(LIMIT)}) as gateway:
        url, path = gateway.url, "/model/toy/api/model/invoke"
        under = exchange(url, head_of_size(url, LIMIT - 100, method="POST", path=path, extra="Content-Length: 0\r\n"))
        assert under.status == 401  # read whole, then refused for want of a token, as before
        refused = exchange(url, head_of_size(url, 1 << 20, method="POST", path=path))
        assert refused.status == 431
        assert json.loads(refused.body) == {"error": f"the request's header fields are over the limit of {LIMIT} bytes"}
        assert refused.ended
        total = 64 << 20
        streamed = exchange(url, oversized_head(url, total, path=path))
        assert streamed.status == 431
        assert streamed.sent < total  # answered while the client still had most of its head to send
        assert exchange(url, head_of_size(url, 200, path="/healthcheck")).status == 200

"""The management API refuses a request head over 64 KiB (``LEGION_API_MAX_HEADER_BYTES``) with a 431 problem
document before it reads further; a head under the limit is served."""

from __future__ import annotations

import json

from tests.api.conftest import Api
from tests.support.rawhttp import exchange, head_of_size, oversized_head


def test_a_head_over_64_kib_is_a_431_problem(api: Api) -> None:
    url = api.url
    under = exchange(url, head_of_size(url, 60 * 1024, path="/api/v1/model/deployment",
                                       extra=f"Authorization: Bearer {api.viewer}\r\n"))  # fmt: skip
    assert under.status == 200
    refused = exchange(url, head_of_size(url, 1 << 20, path="/api/v1/model/deployment"))
    assert refused.status == 431
    assert refused.headers["content-type"] == "application/problem+json"
    assert json.loads(refused.body)["detail"] == "the request's header fields are over the limit of 65536 bytes"
    assert refused.ended
    total = 64 << 20
    streamed = exchange(url, oversized_head(url, total, path="/api/v1/model/deployment"))
    assert streamed.status == 431
    assert streamed.sent < total  # answered while the client still had most of its head to send

"""The gateway's sink to the management API's feedback store: records go as the gateway encoded them, and one
that is not JSON (a model answer that broke it) is dropped instead of blocking every later batch."""

from __future__ import annotations

from pathlib import Path

import httpx

from legion.feedback import records
from legion.feedback.records import Encoded, encode
from legion.gateway.predictions import ApiRecordsSink
from legion.gateway.sources import ApiTokens
from tests.api.conftest import start_api
from tests.gateway.test_gateway_api import admin_token


def prediction(i: int) -> Encoded:
    return encode(records.request_response(
        request_id=f"r{i}", model_name="census", model_version="1", endpoint="default", method="POST",
        path="/api/model/invoke", headers={}, request_body={"columns": ["a"], "data": [[i]]}, status=200,
        latency_s=0.01, deployment="census",
    ))  # fmt: skip


def test_a_record_the_store_cannot_read_is_dropped_and_the_rest_delivered(tmp_path: Path) -> None:
    data_dir = tmp_path / "api"
    api = start_api(data_dir)
    try:
        token = admin_token(data_dir)
        sink = ApiRecordsSink(api.url, ApiTokens(token, None, "legion-api"))
        good = [prediction(i) for i in range(3)]
        broken = Encoded(good[0].place, good[0].json[:-10] + b"[1,}")
        try:
            sink.deliver([good[0], broken, good[1], good[2]])
        finally:
            sink.close()
        listed = httpx.get(f"{api.url}/api/v1/predictions", headers={"Authorization": f"Bearer {token}"}, timeout=10)
        assert listed.status_code == 200, listed.text
        assert sorted(p["requestId"] for p in listed.json()) == ["r0", "r1", "r2"]
    finally:
        api.stop()

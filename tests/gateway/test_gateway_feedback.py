"""Feedback through the gateway: resolved and authorized like a model call, then checked (DESIGN §5) and handed
to the sink; the sink is the seam prediction logging and feedback stores plug into."""

from __future__ import annotations

import httpx
import pytest

from legion.gateway.feedback import MemoryFeedbackSink, RecordingFeedbackHandler
from legion.gateway.sources import StaticRoutingSource
from tests.gateway.conftest import bearer, deployment, running_gateway, snapshot, token

pytestmark = pytest.mark.anyio


@pytest.fixture
def auth() -> dict[str, str]:
    """The ``Authorization`` header of a token for ``census`` version 1, made when the test runs."""
    return bearer(token(("census", "1")))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_feedback_is_checked_and_recorded(auth: dict[str, str]) -> None:
    sink = MemoryFeedbackSink()
    source = StaticRoutingSource(snapshot([deployment("income", ["http://127.0.0.1:9"], ("census", "1"))]))
    async with (
        running_gateway(source, RecordingFeedbackHandler(sink)) as (url, _),
        httpx.AsyncClient(base_url=url, headers=auth) as client,
    ):
        for path, rid in [("/feedback/model/income", "r-1"), ("/api/model/census/1/feedback", "r-2")]:
            answer = await client.post(path, json={"income": ">50K"}, headers={"Request-ID": rid})
            assert answer.status_code == 200, answer.text
            assert answer.json() == {"message": "feedback recorded", "requestId": rid}
            assert answer.headers["request-id"] == rid
        assert [(r.request_id, r.deployment, r.model_name, r.model_version, r.payload) for r in sink.records] == [
            ("r-1", "income", "census", "1", {"income": ">50K"}),
            ("r-2", "income", "census", "1", {"income": ">50K"}),
        ]
        refusals = {
            "no request id": (400, {"json": {"income": 1}}),
            "not JSON": (400, {"content": b"income=1", "headers": {"Request-ID": "x", "Content-Type": "text/plain"}}),
            "bad JSON": (400, {"content": b"{", "headers": {"Request-ID": "x", "Content-Type": "application/json"}}),
            "not an object": (400, {"json": [1], "headers": {"Request-ID": "x"}}),
        }
        for name, (status, options) in refusals.items():
            answer = await client.post("/feedback/model/income", **options)  # type: ignore[arg-type]
            assert answer.status_code == status, (name, answer.text)
            assert "error" in answer.json()
        assert (
            await client.post("/feedback/model/nobody", json={"a": 1}, headers={"Request-ID": "x"})
        ).status_code == 404
        other = bearer(token(("census", "2")))
        assert (
            await client.post("/feedback/model/income", json={"a": 1}, headers={"Request-ID": "x", **other})
        ).status_code == 401
        assert (await client.post("/api/model/census/1/feedback", json={"a": 1},
                                  headers={"Request-ID": "x", "Authorization": ""})).status_code == 401  # fmt: skip
        assert len(sink.records) == 2

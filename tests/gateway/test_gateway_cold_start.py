"""Scale from zero: a request to a deployment with no ready replica is held while the runtime is asked for one,
then answered normally; a cold deployment is never a 4xx or 5xx unless it stays cold past the timeout."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from legion.gateway.sources import StaticRoutingSource
from tests.gateway.conftest import bearer, deployment, running_gateway, snapshot, token
from tests.support.server import ServerProcess

pytestmark = pytest.mark.anyio
INVOKE = "/model/toy/api/model/invoke"
BODY = {"columns": ["a"], "data": [[21]]}


@pytest.fixture
def auth() -> dict[str, str]:
    """The ``Authorization`` header of a token for ``toy`` version 1, made when the test runs."""
    return bearer(token(("toy", "1")))


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Runtime:
    """Starts a real ``legion serve`` replica when asked (from a thread: starting one blocks), then publishes
    the routing with it, as the management API's reconcile loop would."""

    def __init__(self, model: Path) -> None:
        self.model = model
        self.loop = asyncio.get_running_loop()
        self.source = StaticRoutingSource(snapshot([deployment("toy", [], min_replicas=0)]), on_demand=self.demand)
        self.replica: ServerProcess | None = None
        self.starter: threading.Thread | None = None

    def demand(self, deployment_id: str) -> None:
        if self.starter is None:
            self.starter = threading.Thread(target=self._start)
            self.starter.start()

    def _start(self) -> None:
        self.replica = ServerProcess(self.model)
        self.replica.wait_ready()
        ready = snapshot([deployment("toy", [self.replica.url], ("toy", "1"), min_replicas=0)])
        self.loop.call_soon_threadsafe(self.source.publish, ready)

    def stop(self) -> None:
        if self.starter is not None:
            self.starter.join(60)
        if self.replica is not None:
            self.replica.stop()


@pytest.fixture
async def runtime(toy_model: Path) -> Iterator[Runtime]:  # type: ignore[misc]
    started = Runtime(toy_model)
    try:
        yield started
    finally:
        started.stop()


async def test_requests_to_a_cold_deployment_wait_for_its_first_replica(runtime: Runtime, auth: dict[str, str]) -> None:
    async with (
        running_gateway(runtime.source, demand_interval_s=0.2) as (url, _),
        httpx.AsyncClient(base_url=url, timeout=120) as client,
    ):
        answers = await asyncio.gather(*(client.post(INVOKE, json=BODY, headers=auth) for _ in range(5)))
        assert [a.status_code for a in answers] == [200] * 5, [a.text for a in answers]
        assert all(a.json()["prediction"] == [[42]] for a in answers)
        assert runtime.source.demands[:1] == ["toy"]
        # traffic keeps the scaled-from-zero replica: demand is renewed while requests flow (at most every 0.2 s)
        first = len(runtime.source.demands)
        deadline = time.monotonic() + 10
        while len(runtime.source.demands) == first and time.monotonic() < deadline:
            assert (await client.post(INVOKE, json=BODY, headers=auth)).status_code == 200
            await asyncio.sleep(0.05)
        assert len(runtime.source.demands) > first
        metrics = (await client.get("/metrics")).text
        assert 'legion_gateway_cold_start_wait_seconds_count{deployment="toy"} 5.0' in metrics


async def test_a_deployment_that_stays_cold_past_the_timeout_is_a_503(auth: dict[str, str]) -> None:
    source = StaticRoutingSource(snapshot([deployment("toy", [], min_replicas=0)]))
    async with running_gateway(source, cold_start_timeout_s=0.3) as (url, _), httpx.AsyncClient(base_url=url) as client:
        started = time.monotonic()
        answer = await client.post(INVOKE, json=BODY, headers=auth)
        assert answer.status_code == 503 and "within 0.3 s" in answer.json()["error"]
        assert 0.3 <= time.monotonic() - started < 5
        assert source.demands == ["toy"]


async def test_failed_deployments_probes_and_strangers_do_not_wait_or_wake_anything() -> None:
    source = StaticRoutingSource(snapshot([deployment("toy", [], min_replicas=0),
                                           deployment("bad", [], state="Failed")]))  # fmt: skip
    async with running_gateway(source) as (url, _), httpx.AsyncClient(base_url=url) as client:
        failed = await client.post("/model/bad/api/model/invoke", json=BODY, headers=bearer(token(("bad", "1"))))
        assert failed.status_code == 503 and "failed" in failed.json()["error"]
        assert (await client.get("/model/toy/healthcheck")).status_code == 503
        assert (await client.post(INVOKE, json=BODY)).status_code == 401
        assert source.demands == []

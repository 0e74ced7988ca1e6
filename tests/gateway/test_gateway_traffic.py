"""Traffic through a running gateway under load: weighted splits, mirrors that cannot hurt the primary, a replica
killed with SIGKILL mid-load, and request ids that stay unique across workers and restarts."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from legion.core.net import bind
from tests.gateway.conftest import (
    GatewayProcess,
    bearer,
    deployment,
    gateway_process,
    route,
    snapshot,
    token,
    write_routing,
)
from tests.gateway.load import Answer, run_hammer
from tests.support.server import ServerProcess, wait_until

REQUESTS = 10_000


@pytest.fixture
def signed() -> str:
    """A token for every deployment of the routing, made when the test runs."""
    return token(*[(n, "1") for n in ("a", "b", "c", "toy")])


@pytest.fixture(scope="module")
def refusing() -> Iterator[str]:
    """The URL of a port that is bound but does not listen: every connection is refused."""
    sock = bind("127.0.0.1", 0, listen=False)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, replicas: dict[str, ServerProcess],
            refusing: str) -> Iterator[GatewayProcess]:  # fmt: skip
    routing = tmp_path_factory.mktemp("traffic") / "routing.json"
    deployments = [deployment(n, [replicas[n].url]) for n in ("a", "b", "c", "broken", "hanging")]
    write_routing(routing, snapshot([*deployments, deployment("dead", [refusing])], [
        route("ninety", "/ninety", {"a": 90, "b": 10}),
        route("half", "/half", {"a": 50, "c": 50}),
        route("to-broken", "/to-broken", {"a": 100}, mirror="broken"),
        route("to-hanging", "/to-hanging", {"b": 100}, mirror="hanging"),
        route("to-dead", "/to-dead", {"c": 100}, mirror="dead"),
    ]))  # fmt: skip
    with gateway_process(routing) as server:
        yield server


def names(answers: list[Answer]) -> Counter[str]:
    return Counter(a.json()["name"] if a.status == 200 else str(a.status) for a in answers)  # type: ignore[index]


@pytest.mark.parametrize(("prefix", "weights"), [("/ninety", {"a": 90, "b": 10}), ("/half", {"a": 50, "c": 50})])
def test_weights_are_honoured_within_two_percent(
    gateway: GatewayProcess, prefix: str, weights: dict[str, int], signed: str
) -> None:
    answers = run_hammer(f"{gateway.url}{prefix}/invoke", REQUESTS, concurrency=16, headers=bearer(signed))
    counts = names(answers)
    assert sum(counts[n] for n in weights) == REQUESTS, counts
    for name, weight in weights.items():
        assert abs(counts[name] / REQUESTS * 100 - weight) <= 2, counts


def _mirrored(gateway: GatewayProcess) -> dict[tuple[str, str], float]:
    text = httpx.get(f"{gateway.url}/metrics").text
    return {
        (s.labels["deployment"], s.labels["outcome"]): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "legion_gateway_mirror_requests_total"
    }


@pytest.mark.parametrize(("prefix", "primary", "mirror"), [("/to-broken", "a", "broken"), ("/to-hanging", "b", "hanging"),
                                                           ("/to-dead", "c", "dead")])  # fmt: skip
def test_a_broken_mirror_never_touches_the_primary(
    gateway: GatewayProcess, prefix: str, primary: str, mirror: str, signed: str
) -> None:
    answers = run_hammer(f"{gateway.url}{prefix}/invoke", 3000, concurrency=16, headers=bearer(signed))
    assert names(answers) == {primary: 3000}

    def copies() -> float:
        return sum(v for (d, _), v in _mirrored(gateway).items() if d == mirror)

    if mirror == "hanging":  # copies wait for the timeout; past the in-flight limit they are dropped, and counted
        wait_until(lambda: _mirrored(gateway).get((mirror, "dropped"), 0) >= 3000 - 256, 10, "dropped copies")
    else:
        wait_until(lambda: copies() >= 3000, 10, "every copy to be sent and counted")
        outcome = "5xx" if mirror == "broken" else "failed"
        assert _mirrored(gateway).get((mirror, outcome)) == 3000, _mirrored(gateway)


def test_killing_one_of_two_replicas_under_load_fails_at_most_a_tenth_of_a_percent(
    tmp_path: Path, toy_model: Path, signed: str
) -> None:
    first, second = ServerProcess(toy_model), ServerProcess(toy_model)
    try:
        first.wait_ready()
        second.wait_ready()
        routing = tmp_path / "routing.json"
        write_routing(routing, snapshot([deployment("toy", [first.url, second.url], ("toy", "1"))]))
        with gateway_process(routing) as gateway:
            answered = 0

            def kill_midway(number: int, answer: Answer) -> None:
                nonlocal answered
                answered += 1
                if answered == 2000:
                    os.kill(second.process.pid, signal.SIGKILL)

            answers = run_hammer(f"{gateway.url}/model/toy/api/model/invoke", REQUESTS, concurrency=8,
                                 headers=bearer(signed), on_answer=kill_midway)  # fmt: skip
            assert second.process.wait(10) == -signal.SIGKILL
            failed = [a for a in answers if a.status != 200]
            print(f"{len(failed)} of {REQUESTS} failed when a replica was killed:", [a.body[:120] for a in failed])
            assert len(answers) == REQUESTS
            assert len(failed) <= REQUESTS * 0.001, Counter(a.status for a in failed)
            assert all(a.json() == {"prediction": [[2]], "columns": ["double"]} for a in answers if a.status == 200)
    finally:
        first.stop()
        second.stop()


def test_generated_request_ids_are_unique_across_workers_and_restarts(
    tmp_path: Path, replicas: dict[str, ServerProcess], signed: str
) -> None:
    routing = tmp_path / "routing.json"
    write_routing(routing, snapshot([deployment("a", [replicas["a"].url])]))
    seen: list[str] = []
    for workers, count in (("2", REQUESTS), ("1", 2000)):  # the second gateway is a restart
        with gateway_process(routing, "--workers", workers, env={"LEGION_GATEWAY_ACCESS_LOG": "false"}) as gateway:
            answers = run_hammer(f"{gateway.url}/model/a/invoke", count, concurrency=16, headers=bearer(signed))
        assert [a.status for a in answers] == [200] * count
        ids = [a.headers["request-id"] for a in answers]
        assert all(a.json()["headers"]["request-id"] == rid for a, rid in zip(answers, ids, strict=True))  # type: ignore[index]
        seen += ids
    assert len(set(seen)) == len(seen) == REQUESTS + 2000

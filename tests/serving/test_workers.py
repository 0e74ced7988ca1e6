"""Several worker processes share one port; their metrics add up; SIGTERM stops them all."""

from __future__ import annotations

import concurrent.futures
import signal
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.serving.toy_models import save_toy
from tests.support.server import ServerProcess, failed_start

GOOD = {"columns": ["a", "b", "s"], "data": [[1, 2.5, "x"]]}


def test_two_workers_serve_and_count_together(tmp_path: Path) -> None:
    server = ServerProcess(save_toy(tmp_path / "model"), ["--workers", "2"])
    try:
        server.wait_ready()
        total = 200

        def call(_: int) -> int:
            # a new connection per request, so the kernel spreads them over both workers
            return httpx.post(f"{server.url}/api/model/invoke", json=GOOD, timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            assert list(pool.map(call, range(total))) == [200] * total
        text = httpx.get(f"{server.url}/metrics").text
        counted = sum(
            sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "legion_model_requests_total" and sample.labels["code"] == "200"
        )
        assert counted == total
        pids = {
            sample.labels.get("pid")
            for family in text_string_to_metric_families(text)
            for sample in family.samples
            if sample.name == "legion_model_ready" and sample.value == 1
        }
        assert pids  # the ready gauge is reported (aggregated by max over workers)
    finally:
        code = server.stop()
    assert code in (0, -signal.SIGTERM)


def test_workers_that_cannot_load_the_model_stop_the_server(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    code, stderr = failed_start(tmp_path / "empty", ["--workers", "2"])
    assert code == 8
    assert "has no legion.model.yaml" in stderr

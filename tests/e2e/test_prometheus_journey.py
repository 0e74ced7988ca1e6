"""``legion up --prometheus`` runs a real Prometheus that scrapes every component, and the model's request rate is there.

The platform, its gateway and Prometheus start first; the deployment (2 replicas) is applied after, so its replicas
can only become targets through the API's service discovery. Predictions go through the gateway with a model token;
the test polls Prometheus' own HTTP API until every target is up and ``rate(legion_model_requests_total[...])``
for the deployment returns a series. Ctrl-C (SIGTERM) stops Prometheus with the rest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from legion.cli.prometheus import PrometheusSettings, find_binary
from legion.client import LegionClient
from legion.core.errors import NotFoundError
from tests.support.server import wait_until
from tests.support.up import Up, doubler_deployment

SCRAPE_DEADLINE_S = 90.0
RATE = 'sum by (deployment, model, version) (rate(legion_model_requests_total{deployment="doubler"}[30s]))'


def _binary_missing() -> str | None:
    try:
        find_binary(None, PrometheusSettings())
    except NotFoundError as exc:
        return exc.detail
    return None


pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(_binary_missing() is not None, reason=f"no Prometheus to run: {_binary_missing()}"),
]


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return doubler_deployment(tmp_path)


@pytest.fixture
def platform(tmp_path: Path, manifest: Path) -> Iterator[tuple[Up, Path]]:
    config = tmp_path / "cli.yaml"
    args = ["--prometheus", "--port", "0", "--gateway-port", "0", "--prometheus-port", "0",
            "--data-dir", str(tmp_path / "legion"), "-f", str(manifest)]  # fmt: skip
    roots = json.dumps([str(tmp_path)])  # the model is in the test's temporary tree
    up = Up(args, {**os.environ, "LEGION_CONFIG_FILE": str(config), "LEGION_API_ALLOWED_ROOTS": roots})
    try:
        yield up, config
    finally:
        up.stop()


def active_targets(prometheus: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/targets", params={"state": "active"}, timeout=5)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["data"]["activeTargets"]
    return found


def query(prometheus: str, expression: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{prometheus}/api/v1/query", params={"query": expression}, timeout=5)
    assert answer.status_code == 200, answer.text
    result: list[dict[str, Any]] = answer.json()["data"]["result"]
    return result


def test_prometheus_scrapes_every_component_and_has_the_models_request_rate(platform: tuple[Up, Path]) -> None:
    up, config = platform
    urls = up.line(r"management API: (\S+)  gateway: (\S+)")
    api, gateway = urls[1], urls[2]
    prometheus = up.line(r"prometheus: (http://127\.0\.0\.1:\d+)")[1]
    replicas = up.line(r"on replicas (.*)")[1].strip().split(", ")
    up.line(r"the platform runs")

    saved = yaml.safe_load(config.read_text())  # the first context of the file: the current one
    admin = saved["contexts"][saved["current"]]["token"]
    with LegionClient(api, admin) as session:
        model_token = session.model_token([{"name": "doubler", "version": "1"}])["token"]
    invoke = f"{gateway}/model/doubler/api/model/invoke"
    headers = {"Authorization": f"Bearer {model_token}"}

    def predict() -> None:
        answer = httpx.post(invoke, headers=headers, json={"columns": ["a"], "data": [[21]]}, timeout=10)
        assert answer.status_code == 200, answer.text
        assert answer.json()["prediction"] == [[42]]

    expected = {
        ("legion-api", "api", api.removeprefix("http://")),
        ("legion-gateway", "gateway", gateway.removeprefix("http://")),
        *(("legion-models", "model", replica.removeprefix("http://")) for replica in replicas),
    }
    last: list[dict[str, Any]] = []

    def all_up() -> bool:
        predict()
        last[:] = active_targets(prometheus)
        seen = {(t["labels"]["job"], t["labels"]["component"], t["labels"]["instance"]) for t in last}
        return seen == expected and all(t["health"] == "up" for t in last)

    try:
        wait_until(all_up, SCRAPE_DEADLINE_S, "every component to be an 'up' target", interval_s=0.5)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; targets: {last}") from None
    for target in last:
        if target["labels"]["component"] == "model":
            assert target["labels"]["deployment"] == "doubler"
            assert (target["labels"]["model"], target["labels"]["version"]) == ("doubler", "1")

    series: list[dict[str, Any]] = []

    def has_rate() -> bool:
        predict()
        series[:] = query(prometheus, RATE)
        return bool(series) and float(series[0]["value"][1]) > 0

    wait_until(has_rate, SCRAPE_DEADLINE_S, f"data for {RATE}", interval_s=0.5)
    assert [s["metric"] for s in series] == [{"deployment": "doubler", "model": "doubler", "version": "1"}]
    # the gateway's and the API's own series are stored too
    assert query(prometheus, 'sum(legion_gateway_requests_total{deployment="doubler"})')
    assert query(prometheus, "sum(legion_api_requests_total)")

    up.stop()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{prometheus}/-/ready", timeout=5)

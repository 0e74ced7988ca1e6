"""The dashboard in a real browser (Debian's Chromium driven by Playwright) against a real API with the local
runtime and a real census deployment: sign in with a token, see the deployment, send predictions to its replica
and watch the traffic chart move; no console error on the way. The screenshot is kept in ``test-artifacts/``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from legion.feedback import records
from tests.api.conftest import cli_token, start_api
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[3]
CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM_FLAGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync",
]  # fmt: skip
DEPLOYMENT = "census-income"


def records_of(answers: list[httpx.Response], request: dict[str, Any]) -> list[dict[str, Any]]:
    """The records a gateway logs for ``answers``, and feedback for each: right for the even ones, wrong otherwise."""
    shipped: list[dict[str, Any]] = []
    for i, answer in enumerate(answers):
        body = answer.json()
        rid, columns, [row] = f"ui-{i}", body["columns"], body["prediction"]
        predicted = columns[row.index(max(row))]
        other = next(c for c in columns if c != predicted)
        common = {"request_id": rid, "model_name": "census-income", "model_version": "1.0", "deployment": DEPLOYMENT}
        shipped += [
            records.request_response(**common, endpoint="default", method="POST", path="/api/model/invoke",
                                     headers={}, request_body=request, status=200, latency_s=0.003),
            records.response_body(**common, body=body),
            records.feedback(**common, payload={"income": predicted if i % 2 == 0 else other}),
        ]  # fmt: skip
    return shipped


@pytest.fixture(scope="module")
def deployed(
    tmp_path_factory: pytest.TempPathFactory, census_model_dir: Path
) -> Iterator[tuple[ServerProcess, str, str, str]]:
    """A real API (auth on, local runtime) serving the census model with one replica: (api, viewer token,
    endpoint, admin token)."""
    data_dir = tmp_path_factory.mktemp("dashboard-api")
    server = start_api(data_dir, "--runtime", "local", "--stop-replicas-on-exit")
    token = cli_token(data_dir, "viewer")
    admin = {"Authorization": f"Bearer {cli_token(data_dir, 'admin')}"}
    url = f"{server.url}/api/v1/model/deployment"
    try:
        spec = {"id": DEPLOYMENT, "spec": {"image": str(census_model_dir), "minReplicas": 1}}
        assert httpx.post(url, headers=admin, json=spec).status_code == 201
        status: dict[str, Any] = {}

        def ready() -> bool:
            status.update(httpx.get(f"{url}/{DEPLOYMENT}", headers=admin).json().get("status", {}))
            assert status.get("state") != "Failed", status
            return status.get("state") == "Ready"

        wait_until(ready, 120, "the census deployment to be Ready", interval_s=0.2)
        yield server, token, status["endpoints"][0], admin["Authorization"].removeprefix("Bearer ")
    finally:
        httpx.delete(f"{url}/{DEPLOYMENT}", headers=admin)
        wait_until(lambda: httpx.get(f"{url}/{DEPLOYMENT}", headers=admin).status_code == 404, 60, "the replica to go")
        server.stop()


def test_the_dashboard_shows_the_deployment_and_its_traffic_moves(
    deployed: tuple[ServerProcess, str, str, str],
) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed and could not be (scripts/setup.sh installs it as root)")
    from playwright.sync_api import sync_playwright

    server, token, endpoint, admin = deployed
    request = json.loads((ROOT / "examples" / "census_income" / "request.json").read_text())
    problems: list[str] = []
    with sync_playwright() as driver:
        browser = driver.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_FLAGS)
        try:
            page = browser.new_page(viewport={"width": 1300, "height": 1400})
            page.on("console", lambda m: problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))

            page.goto(f"{server.url}/ui")
            assert page.url.endswith("/ui/login")
            page.fill("#token", token)
            page.click("button[type=submit]")
            page.wait_for_url(f"{server.url}/ui")

            row = page.locator('[data-testid="deployments"] tbody tr', has_text=DEPLOYMENT)
            row.wait_for()
            assert "Ready" in row.inner_text() and "census-income 1.0" in row.inner_text()
            assert page.locator('[data-testid="who"]').inner_text() == "viewer (viewer)"
            assert page.locator('[data-empty="predictions"]').inner_text() == "no predictions logged yet"
            assert page.locator('[data-empty="quality"]').inner_text() == "no feedback yet"

            card = page.locator(f'[data-testid="traffic-{DEPLOYMENT}"]')
            card.wait_for()
            chart = card.locator(".chart.requests")
            page.wait_for_function(
                "el => Number(el.dataset.points) >= 1", arg=chart.element_handle(), timeout=30_000
            )  # an idle interval drawn first: what follows is a change
            assert float(chart.get_attribute("data-max") or "0") == 0.0

            answers = [httpx.post(f"{endpoint}/api/model/invoke", json=request) for _ in range(20)]
            assert [a.status_code for a in answers] == [200] * 20
            page.wait_for_function("el => Number(el.dataset.max) > 0", arg=chart.element_handle(), timeout=30_000)
            page.wait_for_function(
                "el => Number(el.dataset.totalRequests) >= 20", arg=card.element_handle(), timeout=30_000
            )
            assert "20 requests" in card.locator(".totals").inner_text()
            latency = card.locator(".chart.latency")
            assert float(latency.get_attribute("data-max") or "0") > 0

            # what a gateway ships for those calls, and ground truth for them: half agrees with the model
            shipped = records_of(answers, request)
            delivered = httpx.post(f"{server.url}/api/v1/feedback/records", json=shipped,
                                   headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
            assert delivered.status_code == 200, delivered.text
            quality = page.locator("#quality .card", has_text="census-income 1.0")
            quality.wait_for(timeout=30_000)
            assert "accuracy 0.5000 (20)" in quality.inner_text()
            assert page.locator('[data-empty="quality"]').is_hidden()
            logged = page.locator('[data-testid="predictions"] tbody tr')
            page.wait_for_function("n => document.querySelectorAll(n).length >= 20",
                                   arg='[data-testid="predictions"] tbody tr', timeout=30_000)  # fmt: skip
            assert "income" in logged.first.inner_text()  # the feedback shown beside its prediction

            ARTIFACTS.mkdir(exist_ok=True)
            shot = ARTIFACTS / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)
            print(f"dashboard screenshot: {shot}")
        finally:
            browser.close()
    assert problems == []

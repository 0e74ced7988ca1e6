"""Issue 5's acceptance journey: predictions through the gateway, ground truth posted back later, online accuracy
from the management API and its ``/metrics``.

A real API (local runtime, SQLite) runs a real replica of the toy model (``a * 2``); a real gateway logs every
prediction and ships the records, with the feedback, to the API's feedback store. 1,000 predictions, then 1,000
feedback posts of which every second one says the model was wrong: the accuracy must be 0.50 ± 0.01.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.api.conftest import start_api
from tests.gateway.conftest import bearer
from tests.gateway.test_gateway_api import admin_token, start_gateway
from tests.support.server import wait_until

PREDICTIONS = 1_000


def samples(text: str, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    return {
        tuple(sorted(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == name
    }


@pytest.mark.slow
def test_half_wrong_feedback_makes_an_accuracy_of_one_half(tmp_path: Path, toy_model: Path) -> None:
    data_dir = tmp_path / "api"
    api = start_api(data_dir, "--runtime", "local")
    gateway = None
    admin = bearer(admin_token(data_dir))
    try:
        with httpx.Client(base_url=f"{api.url}/api/v1", headers=admin, timeout=30) as client:
            spec = {"image": str(toy_model), "minReplicas": 1}
            assert client.post("/model/deployment", json={"id": "toy", "spec": spec}).status_code == 201
            wait_until(lambda: client.get("/model/deployment/toy").json()["status"].get("state") == "Ready", 120,
                       "the toy deployment to be ready")  # fmt: skip
            gateway = start_gateway(api, data_dir)
            model_token = client.post("/model/token", json={"models": [{"name": "toy", "version": "1"}]}).json()
            with httpx.Client(base_url=gateway.url, headers=bearer(model_token["token"]), timeout=30) as model:
                wait_until(lambda: model.get("/model/toy/api/model/info").status_code == 200, 30, "the route")
                for i in range(PREDICTIONS):
                    body = {"columns": ["a"], "data": [[i % 50]]}
                    answer = model.post("/model/toy/api/model/invoke", json=body, headers={"Request-ID": f"p{i}"})
                    assert answer.status_code == 200, answer.text
                for i in range(PREDICTIONS):
                    truth = 2 * (i % 50) + (i % 2)  # every odd one disagrees with the model
                    sent = model.post("/feedback/model/toy", json={"double": truth}, headers={"Request-ID": f"p{i}"})
                    assert sent.status_code == 200, sent.text

            def joined() -> list[dict[str, object]]:
                return [q for q in client.get("/quality").json() if q["compared"] >= PREDICTIONS]

            wait_until(lambda: bool(joined()), 60, "every feedback joined to its prediction", interval_s=0.5)
            [quality] = joined()
            assert (quality["modelName"], quality["modelVersion"], quality["feedbackCount"]) == ("toy", "1", 1000)
            assert quality["accuracy"] == pytest.approx(0.5, abs=0.01)
            assert quality["meanAbsoluteError"] is None

            metrics = httpx.get(f"{api.url}/metrics", headers=admin).text
            accuracy = samples(metrics, "legion_feedback_accuracy")
            assert accuracy[(("model", "toy"), ("version", "1"))] == pytest.approx(0.5, abs=0.01)
            records = samples(metrics, "legion_feedback_records_total")
            assert records[(("model", "toy"), ("tag", "request_response"), ("version", "1"))] >= PREDICTIONS
            assert records[(("model", "toy"), ("tag", "feedback"), ("version", "1"))] >= PREDICTIONS

            recent = client.get("/predictions", params={"deployment": "toy", "limit": 5}).json()
            assert len(recent) == 5 and all(p["feedback"] is not None for p in recent)

            assert client.delete("/model/deployment/toy").status_code == 200
            wait_until(lambda: client.get("/model/deployment/toy").status_code == 404, 60, "the replica to stop")
    finally:
        if gateway is not None:
            gateway.stop()
        api.stop()

"""Prediction logging through a running ``legion gateway``: what is recorded, what is not, and that a kill -9
loses no record of a request that got its 200."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import uuid
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.gateway.conftest import (
    GatewayProcess,
    bearer,
    deployment,
    gateway_process,
    snapshot,
    token,
    write_routing,
)
from tests.support.s3 import CREDENTIALS, moto_s3
from tests.support.server import ServerProcess, wait_until

BODY = {"columns": ["a"], "data": [[5]]}


def sink_records(root: Path, tag: str | None = None) -> list[dict[str, Any]]:
    """Every record the local sink holds (Legion's ``model_log/<tag>/...`` layout), optionally of one tag."""
    found = []
    for path in sorted((root / "model_log").glob("*/*/*/year=*/month=*/day=*/*.json")):
        found += [json.loads(line) for line in path.read_text().splitlines() if line]
    return [r for r in found if tag is None or r["tag"] == tag]


def test_predictions_and_feedback_are_logged_and_nothing_else(tmp_path: Path, toy_replica: ServerProcess) -> None:
    routing = tmp_path / "routing.json"
    quiet = {**deployment("quiet", [toy_replica.url], ("toy", "1")), "predictionLogging": False}
    write_routing(routing, snapshot([deployment("toy", [toy_replica.url], ("toy", "1")), quiet]))
    headers = {**bearer(token(("toy", "1"))), "Request-ID": "req-1", "Cookie": "session=secret"}
    with gateway_process(routing) as gateway:
        answer = httpx.post(f"{gateway.url}/model/toy/api/model/invoke", json=BODY, headers=headers)
        assert answer.status_code == 200, answer.text
        assert httpx.get(f"{gateway.url}/model/toy/api/model/info", headers=headers).status_code == 200
        silent = httpx.post(f"{gateway.url}/model/quiet/api/model/invoke", json=BODY,
                            headers={**headers, "Request-ID": "req-quiet"})  # fmt: skip
        assert silent.status_code == 200
        kept = httpx.post(f"{gateway.url}/feedback/model/toy", json={"double": 10}, headers=headers)
        assert kept.json() == {"message": "feedback recorded", "requestId": "req-1"}
        sink = gateway.logs / "sink"
        wait_until(lambda: len(sink_records(sink)) >= 3, 10, "three records in the local sink")

    [request] = sink_records(sink, "request_response")
    assert request["request_id"] == "req-1"
    assert (request["model_name"], request["model_version"], request["deployment"]) == ("toy", "1", "toy")
    assert (request["request_content"], request["response_status"]) == (BODY, 200)
    assert request["request_uri"] == "/api/model/invoke"
    assert request["response_duration_s"] > 0
    assert "authorization" not in request["request_http_headers"]  # secrets never enter a record
    assert "cookie" not in request["request_http_headers"]
    [response] = sink_records(sink, "response_body")
    assert (response["request_id"], response["response_content"]["prediction"]) == ("req-1", [[10]])
    [feedback] = sink_records(sink, "feedback")
    assert (feedback["request_id"], feedback["payload"], feedback["model_version"]) == ("req-1", {"double": 10}, "1")
    assert len(sink_records(sink)) == 3  # not the info call, not the deployment that switched logging off


def test_the_s3_sink_gets_what_the_local_sink_would(tmp_path: Path, toy_replica: ServerProcess) -> None:
    routing = tmp_path / "routing.json"
    write_routing(routing, snapshot([deployment("toy", [toy_replica.url], ("toy", "1"))]))
    auth = bearer(token(("toy", "1")))
    ids = [f"s3-{i}" for i in range(20)]
    with moto_s3("logs") as (url, client):
        env = {"LEGION_GATEWAY_LOG_S3_BUCKET": "logs", "LEGION_GATEWAY_LOG_S3_PREFIX": "legion",
               "LEGION_GATEWAY_LOG_S3_ENDPOINT_URL": url, "LEGION_GATEWAY_LOG_S3_KEY_ID": CREDENTIALS["aws_access_key_id"],
               "LEGION_GATEWAY_LOG_S3_KEY_SECRET": CREDENTIALS["aws_secret_access_key"]}  # fmt: skip
        with gateway_process(routing, "--log-sink", "s3", env=env) as gateway:
            for rid in ids:
                answer = httpx.post(f"{gateway.url}/model/toy/api/model/invoke", json=BODY,
                                    headers={**auth, "Request-ID": rid})  # fmt: skip
                assert answer.status_code == 200

            def delivered() -> list[dict[str, Any]]:
                keys = [o["Key"] for o in client.list_objects_v2(Bucket="logs").get("Contents", [])]
                lines = [client.get_object(Bucket="logs", Key=k)["Body"].read().decode().splitlines() for k in keys]
                return [json.loads(line) for chunk in lines for line in chunk if line]

            wait_until(lambda: len(delivered()) >= 2 * len(ids), 20, "the records in S3", interval_s=0.2)
            keys = [o["Key"] for o in client.list_objects_v2(Bucket="logs")["Contents"]]
            found = {(r["tag"], r["request_id"]) for r in delivered()}

    assert found == {(tag, rid) for rid in ids for tag in ("request_response", "response_body")}
    assert all(k.startswith("legion/model_log/") and "/toy/1/year=" in k for k in keys), keys
    assert not (gateway.logs / "sink").exists()  # S3 instead of the local directory, not besides it


def test_feedback_without_a_request_id_or_json_is_refused(tmp_path: Path, toy_replica: ServerProcess) -> None:
    routing = tmp_path / "routing.json"
    write_routing(routing, snapshot([deployment("toy", [toy_replica.url], ("toy", "1"))]))
    auth = bearer(token(("toy", "1")))
    with gateway_process(routing) as gateway:
        url = f"{gateway.url}/feedback/model/toy"
        no_id = httpx.post(url, json={"double": 1}, headers=auth)
        not_json = httpx.post(
            url, content=b"{oops", headers={**auth, "Request-ID": "r", "Content-Type": "application/json"}
        )
        unknown = httpx.post(
            f"{gateway.url}/feedback/model/nope", json={"double": 1}, headers={**auth, "Request-ID": "r"}
        )

    assert no_id.status_code == 400 and "Request-ID" in no_id.json()["error"]
    assert not_json.status_code == 400 and "JSON" in not_json.json()["error"]
    assert unknown.status_code == 404
    assert sink_records(gateway.logs / "sink") == []


def test_a_full_buffer_answers_predictions_and_counts_those_it_could_not_log(
    tmp_path: Path, toy_replica: ServerProcess
) -> None:
    """The sink is unreachable and the buffer holds 1 MiB (the least it may): three calls of 300 kB fit, the next
    two are answered all the same and counted in ``/metrics``."""
    routing = tmp_path / "routing.json"
    write_routing(routing, snapshot([deployment("toy", [toy_replica.url], ("toy", "1"))]))
    with socket.socket() as closed:  # bound, never listening: Fluentd's port refuses every connection
        closed.bind(("127.0.0.1", 0))
        env = {"LEGION_GATEWAY_LOG_SINK": "fluentd", "LEGION_GATEWAY_LOG_FLUENTD_PORT": str(closed.getsockname()[1]),
               "LEGION_GATEWAY_LOG_BUFFER_MAX_BYTES": str(1 << 20)}  # fmt: skip
        with gateway_process(routing, env=env) as gateway:
            padded = {**BODY, "note": "x" * 300_000}
            headers = bearer(token(("toy", "1")))
            codes = [httpx.post(f"{gateway.url}/model/toy/api/model/invoke", json=padded, headers=headers).status_code
                     for _ in range(5)]  # fmt: skip
            metrics = httpx.get(f"{gateway.url}/metrics").text
    assert codes == [codes[0]] * 5 and codes[0] < 500, "the replica's answer every time, logged or not"
    dropped = {sample.name: sample.value for family in text_string_to_metric_families(metrics)
               for sample in family.samples}["legion_gateway_prediction_log_dropped_total"]  # fmt: skip
    assert dropped == 2


REQUESTS = 10_000
CLIENTS = 8


def test_a_killed_gateway_loses_no_record_of_an_answered_request(tmp_path: Path, toy_replica: ServerProcess) -> None:
    """kill -9 in the middle of 10,000 requests; after a restart every 200 has its request_response record."""
    routing = tmp_path / "routing.json"
    write_routing(routing, snapshot([deployment("toy", [toy_replica.url], ("toy", "1"))]))
    auth = bearer(token(("toy", "1")))
    answered: list[str] = []
    sent = iter(range(REQUESTS))
    lock = threading.Lock()
    gateway = GatewayProcess(routing)

    def client() -> None:
        with httpx.Client(base_url=gateway.url, headers=auth, timeout=10) as http:
            while True:
                with lock:
                    if next(sent, None) is None:
                        return
                rid = uuid.uuid4().hex
                try:
                    answer = http.post("/model/toy/api/model/invoke", json=BODY, headers={"Request-ID": rid})
                except httpx.TransportError:
                    continue  # the gateway is gone: not answered, so nothing is owed
                if answer.status_code == 200:
                    with lock:
                        answered.append(rid)

    threads = [threading.Thread(target=client) for _ in range(CLIENTS)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: len(answered) >= REQUESTS // 3, 120, "a third of the requests answered")
        os.kill(gateway.process.pid, signal.SIGKILL)
    finally:
        gateway.stop()  # reaps the killed process (or stops it, when the wait above failed)
        for thread in threads:
            thread.join(60)
    assert REQUESTS // 3 <= len(answered) < REQUESTS

    # the same buffer and sink, as a restarted service would have them
    restarted = GatewayProcess(routing, logs=gateway.logs)
    try:
        wanted = set(answered)

        def all_delivered() -> bool:
            return wanted <= {r["request_id"] for r in sink_records(restarted.logs / "sink", "request_response")}

        wait_until(all_delivered, 60, "every answered request's record in the sink", interval_s=0.2)
    finally:
        restarted.stop()

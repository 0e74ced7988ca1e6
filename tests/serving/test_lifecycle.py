"""Readiness waits for the model; SIGTERM drains in-flight requests; a model that cannot load stops the server."""

from __future__ import annotations

import concurrent.futures
import signal
from pathlib import Path

import httpx
import yaml

from legion.model import MANIFEST_NAME
from tests.serving.toy_models import save_gated, save_toy
from tests.support.server import ServerProcess, failed_start, wait_until


def test_not_ready_until_the_model_is_loaded(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "loaded").touch()  # let the export-time check pass; the served copy waits again below
    model = save_gated(tmp_path / "model", gates)
    (gates / "loaded").unlink()
    server = ServerProcess(model)
    try:
        live = httpx.get(f"{server.url}/v2/health/live", timeout=5)
        assert live.status_code == 200
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 503
        assert httpx.get(f"{server.url}/healthcheck").json()["status"] == "loading"
        early = httpx.post(f"{server.url}/api/model/invoke", json={"columns": ["a"], "data": [[1]]})
        assert early.status_code == 503
        assert "still loading" in early.json()["error"]
        (gates / "loaded").touch()
        server.wait_ready()
        answer = httpx.post(f"{server.url}/api/model/invoke", json={"columns": ["a"], "data": [[4]]})
        assert answer.json() == {"prediction": [[8]], "columns": ["double"]}
    finally:
        server.stop()


def test_sigterm_drains_the_request_in_flight(tmp_path: Path) -> None:
    gates = tmp_path / "gates"
    gates.mkdir()
    (gates / "loaded").touch()
    server = ServerProcess(save_gated(tmp_path / "model", gates))
    try:
        server.wait_ready()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            pending = pool.submit(
                httpx.post, f"{server.url}/api/model/invoke", json={"columns": ["a"], "data": [[99]]}, timeout=60
            )
            wait_until((gates / "predicting").exists, 30, "the request to reach the model")
            server.process.send_signal(signal.SIGTERM)
            (gates / "release").touch()
            answer = pending.result(timeout=60)
        assert answer.status_code == 200
        assert answer.json()["prediction"] == [[198]]
        # uvicorn re-raises the SIGTERM it caught once the drain is done: the conventional exit status
        assert server.process.wait(30) in (0, -signal.SIGTERM)
    finally:
        server.stop()


def test_a_model_that_cannot_load_stops_the_server_naming_why(tmp_path: Path) -> None:
    model = save_toy(tmp_path / "model")
    manifest = yaml.safe_load((model / MANIFEST_NAME).read_text())
    manifest["python"] = "3.2.1"
    (model / MANIFEST_NAME).write_text(yaml.safe_dump(manifest))
    code, stderr = failed_start(model, ["--strict-requirements"])
    assert code == 8
    assert "python: the model was saved with 3.2.1" in stderr
    (model / "endpoints" / "default.pkl").write_bytes(b"not a pickle")  # without --strict-requirements: loading fails
    code, stderr = failed_start(model)
    assert code == 8
    assert "cannot unpickle default.pkl" in stderr
    assert "likely cause, versions that differ from the model's:\n  - python: the model was saved with 3.2.1" in stderr

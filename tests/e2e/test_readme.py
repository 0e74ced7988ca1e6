"""The README's main command really serves the census model, and the curl it prints really answers."""

from __future__ import annotations

import json
import os
import queue
import re
import signal
import subprocess
import threading
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]


def test_readme_names_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "bash scripts/quickstart.sh" in readme
    assert "bash scripts/test.sh" in readme
    assert "bash scripts/test.sh" in (ROOT / ".ci/run").read_text()


@pytest.mark.slow
def test_quickstart_runs_the_platform_and_its_curl_answers(tmp_path: Path) -> None:
    process = subprocess.Popen(
        ["bash", "scripts/quickstart.sh", "--port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path / "legion")],
        cwd=ROOT,
        env={**os.environ, "LEGION_CONFIG_FILE": str(tmp_path / "config.yaml")},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # so the whole group (script and server) can be stopped by its PID
    )
    lines: queue.Queue[str] = queue.Queue()
    assert process.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(line) for line in process.stdout], daemon=True)  # type: ignore[union-attr]
    reader.start()
    seen: list[str] = []
    try:
        curl = None
        while curl is None:
            line = lines.get(timeout=300)
            seen.append(line)
            if line.strip().startswith("curl "):
                curl = line.strip()
        assert re.search(r"management API: http://127\.0\.0\.1:\d+", "".join(seen))
        assert "ModelTraining census-income: succeeded" in "".join(seen)
        assert "census-income: Ready 2/2" in "".join(seen)
        answer = None
        for _ in range(600):  # the model loads in the background: retry until it answers or 60 s pass
            done = subprocess.run(
                ["bash", "-c", curl + " -w '\\n%{http_code}'"], check=False, capture_output=True, text=True, timeout=30
            )
            body, _, code = done.stdout.rpartition("\n")
            if code == "200":
                answer = json.loads(body)
                break
            threading.Event().wait(0.1)
        assert answer is not None, "".join(seen)
        assert answer["columns"] == ["<=50K", ">50K"]
        assert abs(sum(answer["prediction"][0]) - 1.0) < 1e-9
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(90)
        reader.join(5)
        process.stdout.close()
    # the curl goes through the gateway, with a model token
    gateway = re.search(r"gateway: (http://127\.0\.0\.1:\d+)", "".join(seen))
    assert gateway is not None and curl.startswith(f"curl -s -X POST {gateway[1]}/model/census-income/")
    assert "Authorization: Bearer " in curl
    # Ctrl-C stops the gateway, the API and the replicas: every address refuses connections
    replicas = re.search(r"on replicas (.*)", "".join(seen))
    assert replicas is not None
    for url in [gateway[1], *replicas[1].strip().split(", ")]:
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthcheck", timeout=5)

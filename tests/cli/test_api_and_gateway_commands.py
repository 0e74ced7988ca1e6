"""``legion api`` and ``legion gateway`` honour a data directory wherever it is given, and stop cleanly on Ctrl-C.

A real API runs on its own data directory; tokens made by ``legion api token`` (in process, with a HOME of the test's
own, so ``~/.legion`` is another installation with another key) must open it whether the directory is given after
``token``, before it, or by ``LEGION_DATA_DIR``. A real gateway given ``--data-dir`` checks model tokens with that
directory's key and keeps its records there. Both, sent SIGINT as a terminal's Ctrl-C does, exit 0 without a word.
"""

from __future__ import annotations

import json
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from legion.cli.main import cli
from legion.core.tokens import ModelScope, TokenConfig, TokenIssuer
from tests.api.conftest import start_api
from tests.support.server import ServerProcess

STOP_DEADLINE_S = 60.0


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, Path]]:
    data_dir = tmp_path_factory.mktemp("platform") / "legion"
    server = start_api(data_dir, "--runtime", "none")
    try:
        yield server, data_dir
    finally:
        server.stop()


def token(home: Path, *args: str, **env: str) -> str:
    result = CliRunner(env={"HOME": str(home), **env}).invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout.strip()


def opens(url: str, signed: str) -> bool:
    answer = httpx.get(f"{url}/api/v1/model/deployment", headers={"Authorization": f"Bearer {signed}"}, timeout=10)
    assert answer.status_code in (200, 401), answer.text
    return answer.status_code == 200


def test_a_token_is_signed_with_the_key_of_the_data_directory_given_anywhere(
    api: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    server, data_dir = api
    home, elsewhere = tmp_path / "home", str(tmp_path / "elsewhere")
    assert opens(server.url, token(home, "api", "token", "--data-dir", str(data_dir)))
    assert opens(server.url, token(home, "api", "--data-dir", str(data_dir), "token"))
    assert opens(server.url, token(home, "api", "token", LEGION_DATA_DIR=str(data_dir)))
    assert opens(server.url, token(home, "api", "--data-dir", elsewhere, "token", "--data-dir", str(data_dir)))
    assert opens(server.url, token(home, "api", "token", LEGION_DATA_DIR=elsewhere, LEGION_API_DATA_DIR=str(data_dir)))
    # the default is ~/.legion: another installation, whose tokens this API refuses
    assert not opens(server.url, token(home, "api", "token"))
    assert (home / ".legion" / "keys.json").exists()


def test_the_gateway_checks_tokens_with_the_key_of_its_data_directory(
    api: tuple[ServerProcess, Path], tmp_path: Path
) -> None:
    _, data_dir = api
    routing = tmp_path / "routing.json"
    deployment = {"id": "doubler", "state": "Ready", "minReplicas": 1, "maxReplicas": 1,
                  "endpoints": ["http://127.0.0.1:9"], "modelName": "doubler", "modelVersion": "1", "deleting": False}  # fmt: skip
    routing.write_text(json.dumps({"etag": "1", "deployments": [deployment], "routes": [], "revokedTokens": []}))
    command = [sys.executable, "-m", "legion", "gateway", "--port", "0", "--routing-file", str(routing),
               "--data-dir", str(data_dir)]  # fmt: skip
    gateway = ServerProcess(routing, command=command)
    try:
        gateway.wait_ready(path="/healthcheck")
        secret = json.loads((data_dir / "keys.json").read_text())["tokenSecret"]

        def call(secret: str) -> int:
            issuer = TokenIssuer(TokenConfig(secret=secret))
            signed, _ = issuer.issue("tester", "legion-model-api", 600.0, models=[ModelScope("doubler", "1")])
            answer = httpx.post(f"{gateway.url}/model/doubler/api/model/invoke", json={"columns": ["a"], "data": [[1]]},
                                headers={"Authorization": f"Bearer {signed}"}, timeout=30)  # fmt: skip
            return answer.status_code

        assert call(secret) not in (401, 403)  # let through (the replica's address refuses: 502 or 503)
        assert call("another-installation-" + "k" * 43) == 401
        assert (data_dir / "gateway" / "buffer").is_dir()
    finally:
        gateway.stop()


@pytest.mark.parametrize("service", ["api", "gateway", "gateway-workers", "serve"])
def test_ctrl_c_stops_a_service_with_status_0_and_no_message(
    service: str, tmp_path: Path, summation_model_dir: Path
) -> None:
    routing = tmp_path / "routing.json"
    routing.write_text(json.dumps({"etag": "1", "deployments": [], "routes": [], "revokedTokens": []}))
    gateway_options = ["--routing-file", str(routing), "--no-auth", "--log-dir", str(tmp_path / "logs"),
                       "--log-buffer-dir", str(tmp_path / "buffer")]  # fmt: skip
    command, *options = {
        "api": ["api", "--data-dir", str(tmp_path / "legion"), "--runtime", "none"],
        "gateway": ["gateway", *gateway_options],
        "gateway-workers": ["gateway", "--workers", "2", *gateway_options],  # the supervisor passes SIGINT on
        "serve": ["serve", str(summation_model_dir)],
    }[service]
    server = ServerProcess(routing, command=[sys.executable, "-m", "legion", command, "--port", "0", *options])
    try:
        server.wait_ready(path="/health" if command == "api" else "/healthcheck")
        server.process.send_signal(signal.SIGINT)
        code = server.process.wait(STOP_DEADLINE_S)
    finally:
        server.stop()
    assert code == 0, server.stderr
    assert "Aborted!" not in server.stderr
    assert "Traceback" not in server.stderr

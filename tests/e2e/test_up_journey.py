"""``legion up`` keeps the platform up and stops it cleanly.

With a deployment of 2 replicas running: the management API is killed (SIGKILL) while a client calls the model
through the gateway without pause, every call is answered, the API comes back on its port, adopts the same replica
processes, and ``legion get dep`` (through the CLI context ``legion up`` saved, in a HOME of the test's own) works
again; then the gateway is killed, comes back and serves again; then Ctrl-C, sent as a terminal sends it (SIGINT to
the whole process group), stops everything with status 0 and without an error. A process that keeps dying is given
up with a clear error.
"""

from __future__ import annotations

import json
import os
import re
import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from click.testing import CliRunner

from legion.cli.main import cli
from legion.client import LegionClient
from tests.support.server import wait_until
from tests.support.up import Up, doubler_deployment

pytestmark = pytest.mark.slow

RESTART_DEADLINE_S = 120.0


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    return not stat.rsplit(") ", 1)[1].startswith("Z")


def up_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of ``legion up`` and the CLI: a HOME of the test's own, so ``~/.legion/config.yaml`` is its."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("LEGION_")}
    return {**env, "HOME": str(tmp_path / "home"), "LEGION_API_ALLOWED_ROOTS": json.dumps([str(tmp_path)]), **extra}


@pytest.fixture
def manifest(tmp_path: Path) -> Path:
    return doubler_deployment(tmp_path)


@pytest.fixture
def up(tmp_path: Path, manifest: Path) -> Iterator[Up]:
    args = ["--port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path / "legion"), "-f", str(manifest)]
    platform = Up(args, up_env(tmp_path))
    try:
        yield platform
    finally:
        platform.stop()


def replica_pids(data_dir: Path) -> list[int]:
    """The replicas the local runtime keeps in its state (as an API that adopts them reads it)."""
    state = json.loads((data_dir / "runtime" / "deployments" / "doubler" / "state.json").read_text())
    return sorted(replica["pid"] for replica in state["replicas"])


class Caller:
    """Calls the model through the gateway, one call after the other, until stopped; counts the answers."""

    def __init__(self, url: str, token: str) -> None:
        self.url, self.token = url, token
        self.answers: list[int | str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        headers = {"Authorization": f"Bearer {self.token}"}
        with httpx.Client(timeout=10) as client:
            while not self._stop.is_set():
                try:
                    answer = client.post(self.url, headers=headers, json={"columns": ["a"], "data": [[21]]})
                    ok = answer.status_code == 200 and answer.json()["prediction"] == [[42]]
                    self.answers.append(200 if ok else f"{answer.status_code} {answer.text}")
                except httpx.HTTPError as exc:
                    self.answers.append(repr(exc))

    def stop(self) -> list[int | str]:
        self._stop.set()
        self._thread.join(30)
        return self.answers


def test_killed_api_and_gateway_come_back_the_replicas_stay_and_ctrl_c_stops_cleanly(up: Up, tmp_path: Path) -> None:
    data_dir = tmp_path / "legion"
    started = up.line(r"management API: (\S+)  gateway: (\S+)  \(pids: api (\d+), gateway (\d+)")
    api, gateway, api_pid, gateway_pid = started[1], started[2], int(started[3]), int(started[4])
    assert "CLI context 'local-legion' saved and current" in up.line(r"CLI context").string
    up.line(r"the platform runs")
    replicas = replica_pids(data_dir)
    assert len(replicas) == 2

    env = up_env(tmp_path)
    config = yaml.safe_load((tmp_path / "home" / ".legion" / "config.yaml").read_text())
    with LegionClient(api, config["contexts"]["local-legion"]["token"]) as session:
        model_token = session.model_token([{"name": "doubler", "version": "1"}])["token"]
    caller = Caller(f"{gateway}/model/doubler/api/model/invoke", model_token)
    wait_until(lambda: 200 in caller.answers, 60, "a first answer through the gateway")

    os.kill(api_pid, signal.SIGKILL)
    new_api_pid = int(up.line(r"restarted the management API \(pid (\d+)\)", RESTART_DEADLINE_S)[1])
    assert new_api_pid != api_pid

    def listed() -> bool:
        result = CliRunner(env=env).invoke(cli, ["get", "dep", "doubler", "-o", "json"])
        return result.exit_code == 0 and json.loads(result.stdout)["status"].get("availableReplicas") == 2

    wait_until(listed, RESTART_DEADLINE_S, "`legion get dep` through the restarted API", interval_s=0.5)
    assert replica_pids(data_dir) == replicas  # adopted, not started again
    assert all(alive(pid) for pid in replicas)
    answers = caller.stop()
    assert answers.count(200) >= 2
    assert all(answer == 200 for answer in answers), [a for a in answers if a != 200][:5]

    os.kill(gateway_pid, signal.SIGKILL)
    up.line(r"restarted the gateway \(pid (\d+)\)", RESTART_DEADLINE_S)
    headers = {"Authorization": f"Bearer {model_token}"}

    def served() -> bool:
        try:
            answer = httpx.post(f"{gateway}/model/doubler/api/model/invoke", headers=headers,
                                json={"columns": ["a"], "data": [[21]]}, timeout=10)  # fmt: skip
        except httpx.HTTPError:
            return False
        return answer.status_code == 200 and answer.json()["prediction"] == [[42]]

    wait_until(served, RESTART_DEADLINE_S, "the restarted gateway to serve on its port", interval_s=0.2)
    assert replica_pids(data_dir) == replicas

    before = len(up.output())
    assert up.interrupt() == 0
    output, stop = up.output(), up.output()[before:]
    assert "Aborted!" not in output
    assert not re.search(r"^Error: ", output, re.MULTILINE), output
    assert "exited with status" not in stop, stop  # nothing died on its own: each was stopped in turn
    wait_until(lambda: not any(alive(pid) for pid in replicas), 60, "the replicas to stop with the platform")
    for url in (api, gateway):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthcheck", timeout=5)


def test_a_service_that_keeps_dying_is_given_up_with_the_reason(tmp_path: Path) -> None:
    manifest = tmp_path / "toolchain.yaml"
    manifest.write_text("kind: ToolchainIntegration\nid: python\nspec: {entrypoint: python}\n")
    args = ["--port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path / "legion"), "-f", str(manifest)]
    env = up_env(tmp_path, LEGION_UP_RESTART__MAX_RAPID_FAILURES="2", LEGION_UP_RESTART__INITIAL_DELAY_S="0.1")
    up = Up(args, env)
    try:
        started = up.line(r"gateway: (\S+)  \(pids: api (\d+), gateway")
        gateway, pid = started[1], int(started[2])
        up.line(r"the platform runs")
        os.kill(pid, signal.SIGKILL)
        os.kill(int(up.line(r"restarted the management API \(pid (\d+)\)", RESTART_DEADLINE_S)[1]), signal.SIGKILL)
        assert up.wait() == 7
    finally:
        up.stop()
    output = up.output()
    assert "Error: the management API exited 2 times in a row, each less than 60 s after its start" in output
    assert "not restarting it" in output
    with pytest.raises(httpx.ConnectError):  # the rest of the platform was stopped
        httpx.get(f"{gateway}/healthcheck", timeout=5)


def test_ctrl_c_in_the_terminal_stops_the_platform_with_status_0_and_no_error(tmp_path: Path) -> None:
    manifest = tmp_path / "toolchain.yaml"
    manifest.write_text("kind: ToolchainIntegration\nid: python\nspec: {entrypoint: python}\n")
    args = ["--port", "0", "--gateway-port", "0", "--data-dir", str(tmp_path / "legion"), "-f", str(manifest)]
    up = Up(args, up_env(tmp_path))
    try:
        started = up.line(r"management API: (\S+)  gateway: (\S+)")
        up.line(r"the platform runs")
        code = up.interrupt()  # SIGINT to every process of the terminal's foreground group, as Ctrl-C is
    finally:
        up.stop()
    output = up.output()
    assert code == 0, output
    assert "Aborted!" not in output
    assert not re.search(r"^Error: ", output, re.MULTILINE), output
    for url in (started[1], started[2]):
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{url}/healthcheck", timeout=5)


def test_a_second_platform_saves_its_own_context_and_leaves_the_current_one_alone(tmp_path: Path) -> None:
    manifest = tmp_path / "toolchain.yaml"
    manifest.write_text("kind: ToolchainIntegration\nid: python\nspec: {entrypoint: python}\n")
    config = tmp_path / "home" / ".legion" / "config.yaml"
    config.parent.mkdir(parents=True)
    first = {"url": "http://127.0.0.1:5080", "token": "first.platform.token", "gateway": "http://127.0.0.1:5090"}
    config.write_text(yaml.safe_dump({"current": "first", "contexts": {"first": first}}))
    env = up_env(tmp_path, LEGION_DATA_DIR=str(tmp_path / "second"))  # the data directory given by the variable
    up = Up(["--port", "0", "--gateway-port", "0", "-f", str(manifest)], env)
    try:
        api = up.line(r"management API: (\S+)  gateway: (\S+)")[1]
        said = up.line(r"CLI context").string
        assert ("CLI context 'local-second' saved; the current context stays 'first' "
                "(switch with: legion config use-context local-second)") in said  # fmt: skip
        up.line(r"the platform runs")
        data = yaml.safe_load(config.read_text())
        assert data["current"] == "first"
        assert data["contexts"]["first"] == first
        assert data["contexts"]["local-second"]["url"] == api
        assert data["contexts"]["local-second"]["dataDir"] == str((tmp_path / "second").resolve())
        assert (tmp_path / "second" / "keys.json").exists()
        assert not (tmp_path / "home" / ".legion" / "keys.json").exists()

        runner = CliRunner(env=env)
        assert runner.invoke(cli, ["config", "use-context", "local-second"]).exit_code == 0
        listed = runner.invoke(cli, ["get", "ti", "python", "-o", "jsonpath={.id}"])  # with the saved token
        assert (listed.exit_code, listed.stdout.strip()) == (0, "python"), listed.output
        assert up.interrupt() == 0
    finally:
        up.stop()

"""A training and its packaging through the API with the local runtime and the CLI: the packaging follows its
training's run, and a failed training says why (issue 17, points 10 and 11).

- A packaging waits for the training that makes its artifact, fails with that training's reason, and packs the
  model that run registered, never one an earlier training left under the same name and version.
- A model version is registered once: a training whose version is taken fails before it runs (naming who holds
  it), and one that lost the race to it ends ``failed`` with that cause, not as "exit code 0", its log kept.
- A training whose code raised names the exception; ``legion logs`` shows what a failed run printed, and says why
  one that failed before it started has no log.

Trainings are small scripts in ``tmp_path``; one that has to wait does so on a file the test creates (with its own
deadline, so nothing hangs).
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner, Result

from legion.cli.main import cli
from legion.model import Manifest
from tests.api.conftest import cli_token, start_api
from tests.support.server import ServerProcess, wait_until

DEADLINE_S = 120.0

# Saves model m under the training's version; with an argument, first waits (at most 60 s) for that file.
TRAIN = textwrap.dedent("""
    import os, sys, time
    import pandas as pd
    import legion.model

    if len(sys.argv) > 1:
        print("waiting for", sys.argv[1], flush=True)
        deadline = time.monotonic() + 60
        while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
            time.sleep(0.05)
    print("training", os.environ["LEGION_TRAINING_ID"], flush=True)
    legion.model.init(os.environ["LEGION_MODEL_NAME"], os.environ["LEGION_MODEL_VERSION"])
    legion.model.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    legion.model.save(os.environ["LEGION_OUTPUT_DIR"])
""")

# Dies of an exception raised deep down: its traceback is longer than the log tail a reason quotes.
RAISES = textwrap.dedent("""
    print("reading the data", flush=True)
    def read(depth):
        if depth == 0:
            raise ValueError("no column 'age'")
        return read(depth - 1)
    read(30)
""")


@dataclass
class Platform:
    server: ServerProcess
    token: str
    data_dir: Path
    code: Path
    """The training scripts (``localPath`` of every training here)."""

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def url(self, path: str) -> str:
        return f"{self.server.url}/api/v1/{path}"

    def legion(self, *args: str) -> Result:
        env = {"LEGION_API_URL": self.server.url, "LEGION_API_TOKEN": self.token,
               "LEGION_CONFIG_FILE": str(self.data_dir / "cli.yaml")}  # fmt: skip
        return CliRunner(env=env).invoke(cli, list(args))

    def create(self, path: str, document: dict[str, Any]) -> None:
        answer = httpx.post(self.url(path), headers=self.headers, json=document)
        assert answer.status_code == 201, answer.text

    def get(self, path: str, ident: str) -> dict[str, Any]:
        answer = httpx.get(self.url(f"{path}/{ident}"), headers=self.headers)
        assert answer.status_code == 200, answer.text
        document: dict[str, Any] = answer.json()
        return document

    def status_when(self, path: str, ident: str, states: set[str], message: str | None = None) -> dict[str, Any]:
        """The status once its state is one of ``states`` (and its message ``message``, when given); an ended
        state counts only for the current spec (a run of an earlier one may still show)."""
        found: dict[str, Any] = {}

        def reached() -> bool:
            document = self.get(path, ident)
            found.clear()
            found.update(document.get("status", {}))
            stale = found.get("state") in ("succeeded", "failed") and (
                found.get("observedGeneration") != document["metadata"]["generation"]
            )
            return not stale and found.get("state") in states and message in (None, found.get("message"))

        wait_until(reached, DEADLINE_S, f"{path} {ident} to reach {states} ({message})", interval_s=0.1)
        return found


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("pipeline-api")
    code = tmp_path_factory.mktemp("pipeline-code")
    (code / "train.py").write_text(TRAIN)
    (code / "raises.py").write_text(RAISES)
    server = start_api(data_dir, "--runtime", "local")
    platform = Platform(server, cli_token(data_dir, "admin"), data_dir, code)
    try:
        platform.create("toolchain/integration", {"id": "python", "spec": {"entrypoint": "python"}})
        platform.create("packaging/integration", {"id": "local", "spec": {"entrypoint": "legion model package"}})
        yield platform
    finally:
        for kind in ("model/packaging", "model/training"):
            for item in httpx.get(platform.url(kind), headers=platform.headers).json():
                httpx.delete(platform.url(f"{kind}/{item['id']}"), headers=platform.headers)
        server.stop()


def training(platform: Platform, ident: str, version: str, *args: str, **fields: Any) -> dict[str, Any]:
    spec = {"model": {"name": "m", "version": version}, "toolchain": "python", "localPath": str(platform.code),
            "entrypoint": "train.py", "args": list(args), **fields}  # fmt: skip
    return {"kind": "ModelTraining", "id": ident, "spec": spec}


def packaging(ident: str, artifact: str) -> dict[str, Any]:
    return {"kind": "ModelPackaging", "id": ident, "spec": {"artifactName": artifact, "integrationName": "local"}}


def manifest(path: Path, *documents: dict[str, Any]) -> str:
    path.write_text(yaml.safe_dump_all(documents))
    return str(path)


def trained(platform: Platform, ident: str, version: str) -> None:
    """Train model m ``version`` as ``ident`` and see it registered."""
    platform.create("model/training", training(platform, ident, version))
    status = platform.status_when("model/training", ident, {"succeeded", "failed"})
    assert status["state"] == "succeeded", status
    assert platform.get("model", f"m/{version}")["source"] == ident


def test_a_packaging_of_a_failed_training_fails_with_its_reason_and_apply_wait_exits_non_zero(
    platform: Platform, tmp_path: Path
) -> None:
    trained(platform, "earlier", "1")  # the registry holds m:1, and models/m-1 its files

    applied = platform.legion("apply", "-f", manifest(tmp_path / "m.yaml", training(platform, "later", "1"),
                              packaging("pack-later", "m-1")), "--wait", "--timeout", "120")  # fmt: skip
    assert applied.exit_code != 0, applied.output
    taken = "model 'm' version '1' is already registered (from 'earlier')"
    assert f"ModelTraining later failed: {taken}" in applied.stderr
    assert "failed with exit code 0" not in applied.stderr

    training_status = platform.get("model/training", "later")["status"]
    assert training_status["state"] == "failed" and taken in training_status["reason"]
    packed = platform.status_when("model/packaging", "pack-later", {"succeeded", "failed"})
    assert packed["state"] == "failed", packed  # it would have packed the earlier training's model
    assert packed["reason"].startswith(f"its training 'later' failed: {taken}")
    assert not packed.get("results")
    waited = platform.legion("apply", "-f", manifest(tmp_path / "p.yaml", packaging("pack-later", "m-1")), "--wait")
    assert waited.exit_code != 0
    assert f"ModelPackaging pack-later failed: its training 'later' failed: {taken}" in waited.stderr

    # Neither ran: their logs say why, not "not started yet".
    for noun, ident in (("train", "later"), ("pack", "pack-later")):
        logged = platform.legion("logs", noun, ident)
        assert logged.exit_code != 0
        assert "failed before it started, so it has no log" in logged.output and taken in logged.output
        assert "not started yet" not in logged.output


def test_a_packaging_waits_for_its_training_and_packs_the_model_of_that_run(platform: Platform, tmp_path: Path) -> None:
    trained(platform, "first-of-2", "2")
    # The version is forgotten by the registry and its training deleted; models/m-2 keeps the earlier files.
    assert httpx.delete(platform.url("model/m/2"), headers=platform.headers).status_code == 200
    assert httpx.delete(platform.url("model/training/first-of-2"), headers=platform.headers).status_code == 200
    wait_until(lambda: httpx.get(platform.url("model/training/first-of-2"), headers=platform.headers).status_code
               == 404, DEADLINE_S, "the first training to go")  # fmt: skip
    assert (platform.data_dir / "models" / "m-2" / "legion.model.yaml").is_file()

    go = tmp_path / "go"
    platform.create("model/training", training(platform, "second-of-2", "2", str(go)))
    platform.create("model/packaging", packaging("pack-2", "m-2"))
    platform.status_when("model/training", "second-of-2", {"running"})
    waiting = platform.status_when(
        "model/packaging", "pack-2", {"scheduling"}, message="waiting for training 'second-of-2' (running)"
    )
    assert not waiting.get("results")
    go.touch()

    packed = platform.status_when("model/packaging", "pack-2", {"succeeded", "failed"})
    assert packed["state"] == "succeeded", packed
    assert platform.get("model/training", "second-of-2")["status"]["state"] == "succeeded"
    [result] = packed["results"]
    model = Manifest.read(Path(result["value"]) / "model")
    assert (model.name, model.version, model.provenance.training_id) == ("m", "2", "second-of-2")

    # Once the registry forgets the version, the training's model is no longer known to be in models/m-2.
    assert httpx.delete(platform.url("model/m/2"), headers=platform.headers).status_code == 200
    platform.create("model/packaging", packaging("pack-2-again", "m-2"))
    again = platform.status_when("model/packaging", "pack-2-again", {"succeeded", "failed"})
    assert again["state"] == "failed"
    assert again["reason"].startswith("model m:2, which training 'second-of-2' made, is not registered any more")


def test_the_log_of_a_training_that_failed_before_it_started_says_why_it_has_none(platform: Platform) -> None:
    platform.create("model/training", training(platform, "no-script", "6", entrypoint="missing.py"))
    status = platform.status_when("model/training", "no-script", {"failed"})
    assert "'missing.py' is not a file" in status["reason"]
    logged = platform.legion("logs", "train", "no-script")
    assert logged.exit_code != 0
    assert "ModelTraining 'no-script' failed before it started, so it has no log: the entrypoint 'missing.py'" in (
        logged.output
    )
    over_http = httpx.get(platform.url("model/training/no-script/log"), headers=platform.headers)
    assert over_http.status_code == 404
    assert "failed before it started" in over_http.json()["detail"]


def test_a_model_version_is_registered_once_even_by_its_own_training(platform: Platform) -> None:
    trained(platform, "rerun", "3")
    changed = training(platform, "rerun", "3", envs=[{"name": "EPOCHS", "value": "2"}])
    answer = httpx.put(platform.url("model/training/rerun"), headers=platform.headers, json=changed)
    assert answer.status_code == 200, answer.text
    status = platform.status_when("model/training", "rerun", {"failed"})
    # Before, the run "succeeded" and the registry kept the earlier run's model as if it were this one's.
    assert "model 'm' version '3' is already registered (from an earlier run of this training)" in status["reason"]
    assert "spec.model.version" in status["reason"]

    retrained = training(platform, "rerun", "3.1", envs=[{"name": "EPOCHS", "value": "2"}])  # one field changed
    assert httpx.put(platform.url("model/training/rerun"), headers=platform.headers, json=retrained).is_success
    assert platform.status_when("model/training", "rerun", {"succeeded", "failed"})["state"] == "succeeded"
    assert platform.get("model", "m/3.1")["source"] == "rerun"


def test_a_training_whose_model_cannot_be_registered_fails_with_that_cause_and_keeps_its_log(
    platform: Platform, tmp_path: Path
) -> None:
    go_first, go_second = tmp_path / "go-first", tmp_path / "go-second"
    platform.create("model/training", training(platform, "first-of-4", "4", str(go_first)))
    platform.create("model/training", training(platform, "second-of-4", "4", str(go_second)))
    for ident in ("first-of-4", "second-of-4"):  # both started while the version was free
        platform.status_when("model/training", ident, {"running"})
    go_first.touch()
    assert platform.status_when("model/training", "first-of-4", {"succeeded", "failed"})["state"] == "succeeded"
    go_second.touch()

    status = platform.status_when("model/training", "second-of-4", {"succeeded", "failed"})
    assert status["state"] == "failed"
    assert status["exitCode"] == 0  # what the code did, but not what the user is told first:
    assert status["reason"].startswith("model 'm' version '4' is already registered (from 'first-of-4')")
    assert status["message"] == "the training's code ended well, but its model was not registered"
    waited = platform.legion("apply", "-f", manifest(tmp_path / "t.yaml", training(platform, "second-of-4", "4",
                             str(go_second))), "--wait")  # fmt: skip
    assert waited.exit_code != 0
    assert "ModelTraining second-of-4 failed: model 'm' version '4' is already registered" in waited.stderr
    assert "failed with exit code 0" not in waited.stderr

    logged = platform.legion("logs", "train", "second-of-4")
    assert logged.exit_code == 0, logged.output
    assert logged.stdout.splitlines() == [f"waiting for {go_second}", "training second-of-4"]
    over_http = httpx.get(platform.url("model/training/second-of-4/log"), headers=platform.headers)
    assert over_http.status_code == 200 and "training second-of-4" in over_http.text


def test_a_training_that_raised_names_the_exception_and_shows_its_log(platform: Platform, tmp_path: Path) -> None:
    document = training(platform, "raises", "5", entrypoint="raises.py")
    applied = platform.legion("apply", "-f", manifest(tmp_path / "r.yaml", document), "--wait", "--timeout", "120")
    assert applied.exit_code != 0
    assert "ModelTraining raises failed with exit code 1: ValueError: no column 'age'; its log ends:" in applied.stderr
    status = platform.get("model/training", "raises")["status"]
    assert status["message"] == "exit code 1: ValueError: no column 'age'"
    assert status["reason"].startswith("exit code 1: ValueError: no column 'age'; its log ends:\n")

    logged = platform.legion("logs", "train", "raises")
    assert logged.exit_code == 0, logged.output
    lines = logged.stdout.splitlines()
    assert lines[:2] == ["reading the data", "Traceback (most recent call last):"]
    assert lines[-1] == "ValueError: no column 'age'"


def test_a_deployment_of_a_package_whose_packaging_failed_fails_with_its_reason(platform: Platform) -> None:
    trained(platform, "for-pack-6", "6")
    platform.create("model/packaging", packaging("pack-6", "m-6"))
    assert platform.status_when("model/packaging", "pack-6", {"succeeded", "failed"})["state"] == "succeeded"
    assert (platform.data_dir / "packages" / "pack-6").is_dir()  # what a deployment would have served

    # The packaging runs again and fails: packages/pack-6 still holds the earlier run's package.
    platform.create("packaging/integration", {"id": "odd", "spec": {"entrypoint": "python pack.py"}})
    changed = packaging("pack-6", "m-6")
    changed["spec"]["integrationName"] = "odd"
    answer = httpx.put(platform.url("model/packaging/pack-6"), headers=platform.headers, json=changed)
    assert answer.status_code == 200, answer.text
    failed = platform.status_when("model/packaging", "pack-6", {"succeeded", "failed"})
    assert failed["state"] == "failed", failed
    assert (platform.data_dir / "packages" / "pack-6").is_dir()

    deployment = {"kind": "ModelDeployment", "id": "dep-6", "spec": {"image": "packages/pack-6", "minReplicas": 1}}
    platform.create("model/deployment", deployment)
    try:
        status = platform.status_when("model/deployment", "dep-6", {"Ready", "Failed"})
        assert status["state"] == "Failed", status  # not Ready on the earlier run's package
        assert status["reason"] == f"its ModelPackaging 'pack-6' failed: {failed['reason']}"
        assert not status.get("availableReplicas")
    finally:
        assert httpx.delete(platform.url("model/deployment/dep-6"), headers=platform.headers).status_code == 200

"""Trainings and packagings through the API with the local runtime: real processes, a real git repository.

The journey: a training from a git connection at a tag, with data bound from a local connection, succeeds, its
model (with the metrics it sent) lands in the registry, its log is served (and followed); a packaging makes a
local package of it; a deployment of that package answers. A failing training ends ``failed`` with its exit
code and log; a missing git reference fails with git's reason.
"""

from __future__ import annotations

import subprocess
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from click.testing import CliRunner

from legion.api.runtime.limits import Limiter
from legion.cli.main import cli
from tests.api.conftest import create, local_api
from tests.support.server import ServerProcess, wait_until

DEADLINE_S = 120.0

TRAIN = textwrap.dedent("""
    import os, sys
    import pandas as pd
    import legion.model

    factor = int(sys.argv[sys.argv.index("--factor") + 1])
    offset = int(open("data/offset.txt").read())
    print(f"training with factor {factor} and offset {offset}", flush=True)
    legion.model.init(os.environ["LEGION_MODEL_NAME"], os.environ["LEGION_MODEL_VERSION"])
    legion.model.export_df(lambda df: df["a"] * factor + offset, pd.DataFrame({"a": [1, 2]}))
    legion.model.send_metric("accuracy", 0.75)
    legion.model.save(os.environ["LEGION_OUTPUT_DIR"])
    print("saved", flush=True)
""")

HOG = "ballast = b'x' * 2**29\nprint('allocated', len(ballast))\n"

BOOM = "import sys\nprint('loading data', flush=True)\nprint('no such column: age', file=sys.stderr)\nsys.exit(3)\n"


def git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@example.invalid", *args],
        capture_output=True, text=True, check=True, timeout=30,
    )  # fmt: skip
    return done.stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A git repository whose tag v1 has the training; a later commit breaks it (so the tag matters)."""
    repo = tmp_path_factory.mktemp("repo")
    git(repo, "init", "-q", "-b", "main")
    (repo / "trainer").mkdir()
    (repo / "trainer" / "train.py").write_text(TRAIN)
    (repo / "trainer" / "boom.py").write_text(BOOM)
    (repo / "trainer" / "hog.py").write_text(HOG)
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "train")
    git(repo, "tag", "v1")
    commit = git(repo, "rev-parse", "HEAD")
    (repo / "trainer" / "train.py").write_text("raise SystemExit('the main branch is broken')\n")
    git(repo, "commit", "-q", "-am", "break")
    return repo, commit


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    data_dir = tmp_path_factory.mktemp("jobs-api")
    with local_api(data_dir) as running:
        yield running


def status_when(api: tuple[ServerProcess, dict[str, str]], path: str, ident: str, states: set[str]) -> dict[str, Any]:
    server, headers = api
    found: dict[str, Any] = {}

    def reached() -> bool:
        answer = httpx.get(f"{server.url}/api/v1/{path}/{ident}", headers=headers)
        assert answer.status_code == 200, answer.text
        found.update(answer.json().get("status", {}))
        return found.get("state") in states

    wait_until(reached, DEADLINE_S, f"{path} {ident} to reach {states}", interval_s=0.2)
    return found


@pytest.fixture(scope="module")
def setup(
    api: tuple[ServerProcess, dict[str, str]], repo: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    data = tmp_path_factory.mktemp("data")
    (data / "offset.txt").write_text("1")
    create(
        api,
        "toolchain/integration",
        {"id": "python", "spec": {"entrypoint": "python", "additionalEnvironments": {"FROM_TOOLCHAIN": "yes"}}},
    )
    create(api, "packaging/integration", {"id": "local", "spec": {"entrypoint": "legion model package"}})
    create(api, "connection", {"id": "code", "spec": {"type": "git", "uri": str(repo[0]), "reference": "main"}})
    create(api, "connection", {"id": "data", "spec": {"type": "local", "uri": str(data)}})


def training(ident: str, entrypoint: str = "train.py", reference: str = "v1", version: str = "1") -> dict[str, Any]:
    return {"id": ident, "spec": {
        "model": {"name": "scaled", "version": version}, "toolchain": "python", "vcsName": "code",
        "reference": reference, "workDir": "trainer", "entrypoint": entrypoint, "hyperParameters": {"factor": "10"},
        "data": [{"connName": "data", "localPath": "data/offset.txt", "remotePath": "offset.txt"}],
    }}  # fmt: skip


def test_a_training_from_git_is_registered_packaged_and_deployed(
    api: tuple[ServerProcess, dict[str, str]], repo: tuple[Path, str], setup: None
) -> None:
    server, headers = api
    create(api, "model/training", training("scaled-1"))
    status = status_when(api, "model/training", "scaled-1", {"succeeded", "failed"})
    assert status["state"] == "succeeded", status
    assert status["exitCode"] == 0
    assert status["artifacts"] == [{"artifactName": "scaled-1", "commitID": repo[1], "runId": "scaled-1"}]
    assert status["enforcedLimits"]["mechanism"] in ("none", "cgroup v1", "cgroup v2")  # whatever this machine allows

    log = httpx.get(f"{server.url}/api/v1/model/training/scaled-1/log", headers=headers)
    assert log.status_code == 200 and log.headers["content-type"].startswith("text/plain")
    assert "training with factor 10 and offset 1" in log.text and "saved" in log.text

    model = httpx.get(f"{server.url}/api/v1/model/scaled/1", headers=headers).json()
    assert model["source"] == "scaled-1"
    assert model["metrics"]["accuracy"] == 0.75

    create(
        api, "model/packaging", {"id": "scaled-pack", "spec": {"artifactName": "scaled-1", "integrationName": "local"}}
    )
    packed = status_when(api, "model/packaging", "scaled-pack", {"succeeded", "failed"})
    assert packed["state"] == "succeeded", packed
    [result] = packed["results"]
    package = Path(result["value"])
    assert (package / "legion.package.yaml").is_file() and (package / "requirements.txt").is_file()

    create(api, "model/deployment", {"id": "scaled", "spec": {"image": str(package), "minReplicas": 1}})
    deployed = status_when(api, "model/deployment", "scaled", {"Ready", "Failed"})
    assert deployed["state"] == "Ready", deployed
    assert (deployed["modelName"], deployed["modelVersion"]) == ("scaled", "1")
    [endpoint] = deployed["endpoints"]
    answer = httpx.post(f"{endpoint}/api/model/invoke", json={"columns": ["a"], "data": [[4]]})
    assert answer.json()["prediction"] == [[41]]

    replica_log = httpx.get(f"{server.url}/api/v1/model/deployment/scaled/log", headers=headers)
    assert replica_log.status_code == 200
    assert f"[replica-1] listening on {endpoint}" in replica_log.text.splitlines()


def test_a_failing_training_ends_failed_with_its_exit_code_and_log(
    api: tuple[ServerProcess, dict[str, str]], setup: None
) -> None:
    server, headers = api
    create(api, "model/training", training("boom", entrypoint="boom.py", version="boom"))
    status = status_when(api, "model/training", "boom", {"succeeded", "failed"})
    assert status["state"] == "failed"
    assert status["exitCode"] == 3
    assert "exit code 3" in status["reason"] and "no such column: age" in status["reason"]
    followed = httpx.get(f"{server.url}/api/v1/model/training/boom/log", params={"follow": "true"}, headers=headers)
    assert followed.text == "loading data\nno such column: age\n"


def test_an_unknown_git_reference_fails_with_gits_reason(
    api: tuple[ServerProcess, dict[str, str]], setup: None
) -> None:
    create(api, "model/training", training("lost", reference="no-such-tag", version="lost"))
    status = status_when(api, "model/training", "lost", {"succeeded", "failed"})
    assert status["state"] == "failed"
    assert "git checkout failed" in status["reason"] and "no-such-tag" in status["reason"]


def test_the_log_of_an_unknown_training_is_404(api: tuple[ServerProcess, dict[str, str]]) -> None:
    server, headers = api
    answer = httpx.get(f"{server.url}/api/v1/model/training/nothing/log", headers=headers)
    assert answer.status_code == 404
    assert "nothing" in answer.json()["detail"]


def test_a_training_over_its_memory_limit_fails_and_says_so_and_get_shows_the_limits(
    api: tuple[ServerProcess, dict[str, str]], setup: None, tmp_path: Path
) -> None:
    if set(Limiter.find().hierarchies) != {"memory", "cpu"}:
        pytest.skip("this machine lets the API make no memory and cpu cgroups")
    server, headers = api
    hog = training("hog", entrypoint="hog.py", version="hog")
    hog["spec"]["resources"] = {"limits": {"memory": "64Mi"}}
    create(api, "model/training", hog)
    status = status_when(api, "model/training", "hog", {"succeeded", "failed"})
    assert status["state"] == "failed"
    assert status["reason"].startswith("exceeded its memory limit 64Mi (killed by the kernel's out-of-memory killer)")
    assert status["enforcedLimits"]["memory"] == "64Mi"

    runner = CliRunner(env={"LEGION_API_URL": server.url, "LEGION_API_TOKEN": headers["Authorization"][7:],
                            "LEGION_CONFIG_FILE": str(tmp_path / "config.yaml")})  # fmt: skip
    shown = runner.invoke(cli, ["get", "train", "hog", "-o", "yaml"])
    assert shown.exit_code == 0, shown.output
    [document] = yaml.safe_load_all(shown.stdout)
    assert document["spec"]["resources"] == {  # the memory limit given, Legion's defaults for the rest
        "limits": {"cpu": "256m", "memory": "64Mi"},
        "requests": {"cpu": "128m", "memory": "64Mi"},
    }
    enforced = document["status"]["enforcedLimits"]
    assert (enforced["memory"], enforced["cpu"]) == ("64Mi", "256m")
    assert enforced["mechanism"].startswith("cgroup v")
    assert "cpu" in enforced["detail"] and "memory" in enforced["detail"]

"""Acceptance of "user code never reaches the control plane" (issue 17, point 1), through the HTTP API as a data
scientist, with the local runtime running real trainings.

A data scientist must not become admin: the API refuses host paths into the platform's data (a ``local``
Connection, a training's ``localPath``, a deployment ``image``, an imported model ``path``) with 422 naming the
field; a training whose code looks for the keys, the database and another user's training data — directly, through
a data binding, through ``/proc`` — finds nothing, and a Connection swapped for a link to the data directory after
it was accepted is refused when the training starts. The data directory and its files are its owner's only.
"""

from __future__ import annotations

import json
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import cli_token, start_api
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.slow
DEADLINE_S = 120.0

# Looks for the platform's secrets every way it can think of and prints what it found as one JSON line.
ATTACK = """
import json, os, sys
data_dir = sys.argv[1]
def look(path):
    try:
        if os.path.isdir(path):
            return sorted(os.listdir(path))
        with open(path, "rb") as file:
            return file.read(300).decode(errors="replace")
    except OSError as exc:
        return type(exc).__name__
found = {name: look(os.path.join(data_dir, name)) for name in
         ("keys.json", "legion.db", "runtime/sources/victim/data/secret.txt", "runtime/trainings/victim/job.log")}
found["data_dir"] = look(data_dir)
found["bound"] = look("data")
found["through_proc"] = sorted({look(f"/proc/{p}/root{data_dir}/keys.json") for p in os.listdir("/proc") if p.isdigit()})
found["api_settings"] = sorted(name for name in os.environ if name.startswith("LEGION_API"))
print("FOUND " + json.dumps(found), flush=True)
"""


class Platform:
    def __init__(self, tmp_path: Path) -> None:
        self.data_dir = tmp_path / "legion"
        self.server: ServerProcess = start_api(self.data_dir, "--runtime", "local")
        self.admin = {"Authorization": f"Bearer {cli_token(self.data_dir, 'admin')}"}
        self.scientist = {"Authorization": f"Bearer {cli_token(self.data_dir, 'data-scientist')}"}

    def post(self, path: str, document: dict[str, Any], headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.server.url}/api/v1/{path}", json=document, headers=headers, timeout=30)

    def ended(self, training: str) -> dict[str, Any]:
        found: dict[str, Any] = {}

        def done() -> bool:
            answer = httpx.get(f"{self.server.url}/api/v1/model/training/{training}", headers=self.scientist)
            found.update(answer.json().get("status", {}))
            return found.get("state") in {"succeeded", "failed"}

        wait_until(done, DEADLINE_S, f"training {training} to end", interval_s=0.2)
        return found

    def log(self, training: str) -> str:
        return httpx.get(f"{self.server.url}/api/v1/model/training/{training}/log", headers=self.scientist).text


@pytest.fixture
def platform(tmp_path: Path) -> Iterator[Platform]:
    running = Platform(tmp_path)
    try:
        yield running
    finally:
        running.server.stop()


def training(
    ident: str, source: Path, *, data: list[dict[str, str]] | None = None, args: tuple[str, ...] = ()
) -> dict[str, Any]:
    spec = {"model": {"name": ident, "version": "1"}, "toolchain": "python", "localPath": str(source),
            "entrypoint": "train.py", "args": list(args), "data": data or []}  # fmt: skip
    return {"id": ident, "spec": spec}


def test_a_data_scientist_cannot_reach_the_keys_the_database_or_another_users_data(
    platform: Platform, tmp_path: Path
) -> None:
    data_dir = platform.data_dir
    keys = json.loads((data_dir / "keys.json").read_text())
    secrets = [keys["tokenSecret"], *keys["encryptionKeys"], "the victim's secret"]
    assert platform.post("toolchain/integration", {"id": "python", "spec": {"entrypoint": "python"}}, platform.admin)

    # Another user's training, with data of their own: it leaves a copy in the runtime's directory.
    victim_data, victim_code = tmp_path / "victim-data", tmp_path / "victim-code"
    victim_data.mkdir()
    (victim_data / "secret.txt").write_text("the victim's secret")
    victim_code.mkdir()
    (victim_code / "train.py").write_text("print('training on private data')\n")
    assert platform.post("connection", {"id": "victim", "spec": {"type": "local", "uri": str(victim_data)}},
                         platform.admin).status_code == 201  # fmt: skip
    bound = [{"connName": "victim", "localPath": "data", "remotePath": ""}]
    assert platform.post("model/training", training("victim", victim_code, data=bound), platform.admin).is_success
    platform.ended("victim")
    assert (data_dir / "runtime" / "sources" / "victim" / "data" / "secret.txt").is_file()

    # The API refuses paths into its own data, naming the field.
    refusals = [
        ("connection", {"id": "keys", "spec": {"type": "local", "uri": str(data_dir)}}, "spec.uri"),
        ("model/training", training("direct", data_dir), "spec.localPath"),
        ("model/deployment", {"id": "keys", "spec": {"image": str(data_dir / "keys.json")}}, "spec.image"),
        ("model", {"path": str(data_dir / "runtime")}, "path"),
    ]
    for path, document, field in refusals:
        answer = platform.post(path, document, platform.scientist)
        assert answer.status_code == 422, answer.text
        assert answer.headers["content-type"] == "application/problem+json"
        assert "is in the platform's own data" in answer.json()["errors"][field]

    # A training whose code looks everywhere, with data bound from a connection of its own.
    code, mine = tmp_path / "attack", tmp_path / "mine"
    code.mkdir()
    (code / "train.py").write_text(ATTACK)
    mine.mkdir()
    (mine / "notes.txt").write_text("my own data")
    assert platform.post("connection", {"id": "mine", "spec": {"type": "local", "uri": str(mine)}},
                         platform.scientist).status_code == 201  # fmt: skip
    own = [{"connName": "mine", "localPath": "data", "remotePath": ""}]
    attack = training("attack", code, data=own, args=(str(data_dir),))
    assert platform.post("model/training", attack, platform.scientist).status_code == 201
    platform.ended("attack")
    log = platform.log("attack")
    [line] = [line for line in log.splitlines() if line.startswith("FOUND ")]
    found = json.loads(line.removeprefix("FOUND "))
    assert found["keys.json"] == found["legion.db"] == "FileNotFoundError", found
    assert found["runtime/sources/victim/data/secret.txt"] == "FileNotFoundError"
    assert found["runtime/trainings/victim/job.log"] == "FileNotFoundError"
    assert found["data_dir"] == ["runtime"]  # only the mount points of its own files
    assert found["bound"] == ["notes.txt"]
    assert found["through_proc"] in (["FileNotFoundError"], ["PermissionError"], [])
    assert found["api_settings"] == []

    # A connection accepted while it was a directory, then swapped for a link into the data directory; and a
    # remotePath that climbs out of its connection.
    swapped = tmp_path / "swapped"
    swapped.mkdir()
    assert platform.post("connection", {"id": "swapped", "spec": {"type": "local", "uri": str(swapped)}},
                         platform.scientist).status_code == 201  # fmt: skip
    swapped.rmdir()
    swapped.symlink_to(data_dir)
    tricks = {
        "through-link": [{"connName": "swapped", "localPath": "data", "remotePath": "keys.json"}],
        "climbing": [{"connName": "mine", "localPath": "data", "remotePath": "../legion/keys.json"}],
    }
    for ident, bindings in tricks.items():
        assert platform.post("model/training", training(ident, code, data=bindings, args=(str(data_dir),)),
                             platform.scientist).status_code == 201  # fmt: skip
    for ident in tricks:
        status = platform.ended(ident)
        assert status["state"] == "failed"
        assert "leads into the platform's own data" in status["reason"] or "leads out of" in status["reason"]

    everything = [platform.log(ident) for ident in ("attack", *tricks)]
    everything += [json.dumps(platform.ended(ident)) for ident in ("attack", *tricks)]
    assert not [secret for secret in secrets for text in everything if secret in text]

    # The data directory and what it keeps are its owner's only.
    assert stat.S_IMODE(data_dir.stat().st_mode) == 0o700
    for name in ("legion.db", "keys.json"):
        assert stat.S_IMODE((data_dir / name).stat().st_mode) == 0o600, name

"""``LocalRuntime`` with real ``legion serve`` processes: scaling, restarts, replacement, adoption, failures.

Processes are seen from outside, as ``ps`` would: the children of this test process, by pid. An autouse fixture
stops every deployment the test left and fails the test if one of its processes is still there.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import legion.model as lm
from legion.api.runtime.base import DeploymentObservation, PermanentRuntimeError
from legion.api.runtime.local import LocalRuntime
from legion.core.net import bind
from legion.core.resources import ModelDeploymentSpec
from tests.support.processes import children, eventually_gone, gone, no_children_left_since

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    builder = lm.ModelBuilder("double", "1")
    builder.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    directory = tmp_path_factory.mktemp("models")
    builder.save(directory / "double.zip")
    return builder.save(directory / "double")


def replica_pids(model: Path) -> set[int]:
    """Running ``legion serve`` children for ``model``."""
    pids = set()
    for pid in children():
        try:
            args = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and os.fsencode(str(model)) in args:
            pids.add(pid)
    return pids


def serving_pids(model: Path) -> set[int]:
    """Every replica (``legion serve`` process) on this machine for ``model``, whoever its parent is: the top of
    each such process tree (a replica runs under its launcher and sandbox, which name the model too)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        try:
            args = (entry / "cmdline").read_bytes().split(b"\0") if entry.name.isdigit() else []
            if b"serve" in args and os.fsencode(str(model)) in args:
                parents[int(entry.name)] = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return {pid for pid, parent in parents.items() if parent not in parents}


DEPLOY_AND_EXIT = """
import asyncio, sys, time
from pathlib import Path
from legion.api.runtime.local import LocalRuntime
from legion.core.resources import ModelDeploymentSpec

async def main() -> None:
    runtime = LocalRuntime(Path(sys.argv[1]))
    end = time.monotonic() + 60
    while time.monotonic() < end:
        observation = await runtime.apply_deployment("double", ModelDeploymentSpec(image=sys.argv[2]))
        if observation.available == 1:
            print(observation.endpoints[0])
            return
        await asyncio.sleep(0.1)
    sys.exit("the replica did not become ready")

asyncio.run(main())
"""


@pytest.fixture(autouse=True)
def work_dir(tmp_path: Path) -> Iterator[Path]:
    """The runtime's work directory; afterwards every deployment in it is stopped and no child may be left."""
    before = children()
    work = tmp_path / "work"
    yield work
    asyncio.run(LocalRuntime(work, stop_timeout_s=10).stop_all())
    no_children_left_since(before)


async def converge(
    runtime: LocalRuntime, deployment_id: str, spec: ModelDeploymentSpec, available: int
) -> DeploymentObservation:
    """Apply until exactly ``available`` replicas run and are ready."""
    end = time.monotonic() + DEADLINE_S
    while True:
        observation = await runtime.apply_deployment(deployment_id, spec)
        if observation.replicas == observation.available == available:
            return observation
        if time.monotonic() > end:
            raise AssertionError(f"{deployment_id} did not converge to {available} ready replicas: {observation}")
        await asyncio.sleep(0.1)


async def failure(runtime: LocalRuntime, deployment_id: str, spec: ModelDeploymentSpec) -> PermanentRuntimeError:
    """Apply until the runtime gives up on the deployment."""
    end = time.monotonic() + DEADLINE_S
    while time.monotonic() < end:
        try:
            await runtime.apply_deployment(deployment_id, spec)
        except PermanentRuntimeError as exc:
            return exc
        await asyncio.sleep(0.1)
    raise AssertionError(f"{deployment_id} did not fail")


def spec(image: Path | str, replicas: int = 1) -> ModelDeploymentSpec:
    return ModelDeploymentSpec(image=str(image), min_replicas=replicas)


async def invoke(url: str, a: int) -> object:
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(f"{url}/api/model/invoke", json={"columns": ["a"], "data": [[a]]})
    assert response.status_code == 200, response.text
    return response.json()["prediction"]


def fake_python(tmp_path: Path, body: str) -> str:
    """An executable that stands in for ``python -m legion serve`` and behaves badly."""
    script = tmp_path / "fake-python"
    script.write_text(f"#!{sys.executable}\n{body}\n")
    script.chmod(script.stat().st_mode | stat.S_IXUSR)
    return str(script)


async def test_replicas_serve_then_scale_down_to_zero_and_delete(model_dir: Path, work_dir: Path) -> None:
    runtime = LocalRuntime(work_dir)
    observation = await converge(runtime, "double", spec(model_dir, 2), 2)
    assert len(set(observation.endpoints)) == 2
    assert all(url.startswith("http://127.0.0.1:") for url in observation.endpoints)
    assert observation.service_url == observation.endpoints[0]
    assert [await invoke(url, 3) for url in observation.endpoints] == [[[6]], [[6]]]
    assert (work_dir / "deployments" / "double" / "replica-1.log").is_file()
    two = replica_pids(model_dir)
    assert len(two) == 2

    observation = await runtime.apply_deployment("double", spec(model_dir, 1))
    assert (observation.replicas, observation.available) == (1, 1)
    [kept] = replica_pids(model_dir)
    [stopped] = two - {kept}
    assert gone(stopped)
    assert await invoke(observation.endpoints[0], 4) == [[8]]

    assert await runtime.apply_deployment("double", spec(model_dir, 0)) == DeploymentObservation(
        0, 0, model_name="double", model_version="1"
    )
    assert gone(kept)
    assert await runtime.observe_deployment("double") == DeploymentObservation(
        0, 0, model_name="double", model_version="1"
    )
    assert await runtime.delete_deployment("double")
    assert await runtime.observe_deployment("double") is None
    assert not (work_dir / "deployments" / "double").exists()


async def test_killed_replica_is_restarted_and_a_new_runtime_adopts_the_replicas(
    model_dir: Path, work_dir: Path
) -> None:
    runtime = LocalRuntime(work_dir)
    await converge(runtime, "double", spec(model_dir, 2), 2)
    first = replica_pids(model_dir)
    victim = min(first)
    os.kill(victim, signal.SIGKILL)
    await converge(runtime, "double", spec(model_dir, 2), 2)
    assert gone(victim)
    second = replica_pids(model_dir)
    assert len(second) == 2
    assert second - first != set()
    assert first - {victim} <= second
    await runtime.close()

    adopter = LocalRuntime(work_dir)
    observed = await adopter.observe_deployment("double")
    assert observed is not None
    assert (observed.replicas, observed.available) == (2, 2)
    applied = await adopter.apply_deployment("double", spec(model_dir, 2))
    assert applied == observed
    assert replica_pids(model_dir) == second, "adopting started or stopped processes"
    assert [await invoke(url, 1) for url in applied.endpoints] == [[[2]], [[2]]]

    assert await adopter.delete_deployment("double")
    assert all(gone(pid) for pid in second)
    await adopter.close()


async def test_replicas_outlive_the_process_that_started_them_and_are_adopted(model_dir: Path, work_dir: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", DEPLOY_AND_EXIT, str(work_dir), str(model_dir)],
        capture_output=True, text=True, timeout=DEADLINE_S, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    url = done.stdout.strip()
    [pid] = serving_pids(model_dir)
    assert pid not in children()

    adopter = LocalRuntime(work_dir)
    expected = DeploymentObservation(1, 1, (url,), url, model_name="double", model_version="1")
    assert await adopter.observe_deployment("double") == expected
    assert await adopter.apply_deployment("double", spec(model_dir)) == expected
    assert serving_pids(model_dir) == {pid}
    assert await invoke(url, 21) == [[42]]
    assert await adopter.delete_deployment("double")
    assert await eventually_gone(pid)


async def test_a_reused_pid_is_neither_adopted_nor_signalled(tmp_path: Path, work_dir: Path) -> None:
    python = fake_python(tmp_path, "import signal; signal.pause()")
    runtime = LocalRuntime(work_dir, python=python)
    assert (await runtime.apply_deployment("reused", spec(tmp_path))).replicas == 1
    [replica] = replica_pids(tmp_path)
    await runtime.close()
    stranger = subprocess.Popen([sys.executable, "-c", "import signal; signal.pause()"])
    try:
        state_file = work_dir / "deployments" / "reused" / "state.json"
        state = json.loads(state_file.read_text())
        state["replicas"][0]["pid"] = stranger.pid  # as if the replica died and its pid went to another program
        state_file.write_text(json.dumps(state))
        os.kill(replica, signal.SIGKILL)
        os.waitpid(replica, 0)

        adopter = LocalRuntime(work_dir, python=python)
        assert await adopter.observe_deployment("reused") == DeploymentObservation(0, 0)
        assert await adopter.delete_deployment("reused")
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


async def test_a_replica_does_not_inherit_the_api_socket(tmp_path: Path, work_dir: Path) -> None:
    python = fake_python(tmp_path, "import signal; signal.pause()")
    with bind("127.0.0.1", 0) as api_socket:  # inheritable, as every Legion server's listening socket is
        inode = os.fstat(api_socket.fileno()).st_ino
        await LocalRuntime(work_dir, python=python).apply_deployment("fds", spec(tmp_path))
        [replica] = replica_pids(tmp_path)
        links = [os.readlink(fd) for fd in Path(f"/proc/{replica}/fd").iterdir()]
    assert f"socket:[{inode}]" not in links
    assert any(link.endswith("replica-1.log") for link in links)


async def test_a_changed_model_path_replaces_the_replica(model_dir: Path, work_dir: Path) -> None:
    runtime = LocalRuntime(work_dir, model_root=model_dir.parent)
    before = await converge(runtime, "double", spec(model_dir.name), 1)  # relative to model_root
    [old] = replica_pids(model_dir)

    zipped = model_dir.parent / "double.zip"
    after = await converge(runtime, "double", spec(zipped), 1)
    assert gone(old)
    assert replica_pids(model_dir) == set()
    assert len(replica_pids(zipped)) == 1
    assert after.endpoints != before.endpoints
    assert await invoke(after.endpoints[0], 5) == [[10]]


async def test_a_missing_model_path_fails_at_once(tmp_path: Path, work_dir: Path) -> None:
    runtime = LocalRuntime(work_dir, model_root=tmp_path)
    with pytest.raises(PermanentRuntimeError, match="image 'no/such/model' is not a model path on this machine"):
        await runtime.apply_deployment("missing", spec("no/such/model"))
    assert await runtime.observe_deployment("missing") is None


async def test_a_directory_that_is_not_a_model_fails_with_its_log(tmp_path: Path, work_dir: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    runtime = LocalRuntime(work_dir)
    error = await failure(runtime, "empty", spec(empty))
    assert "cannot load the model (exit code 8)" in error.reason
    assert "has no legion.model.yaml" in error.reason
    assert len(error.reason.splitlines()) <= 21
    assert replica_pids(empty) == set()

    again = children()
    with pytest.raises(PermanentRuntimeError) as repeated:  # the failure sticks until the spec changes
        await runtime.apply_deployment("empty", spec(empty))
    assert repeated.value.reason == error.reason
    assert children() == again


async def test_a_replica_that_keeps_dying_fails_after_the_limit(tmp_path: Path, work_dir: Path) -> None:
    python = fake_python(tmp_path, "import sys; print('boom: no GPU here', file=sys.stderr); sys.exit(3)")
    runtime = LocalRuntime(work_dir, python=python, failure_limit=2)
    error = await failure(runtime, "crashing", spec(tmp_path))
    assert "exited with code 3 before becoming ready (2 times in a row)" in error.reason
    assert "boom: no GPU here" in error.reason
    log = (work_dir / "deployments" / "crashing" / "replica-1.log").read_text()
    assert log.count("boom") == 2, "the restart should reuse the replica's slot and log"


async def test_a_replica_that_never_becomes_ready_is_killed(tmp_path: Path, work_dir: Path) -> None:
    python = fake_python(tmp_path, "import signal; print('loading forever', flush=True); signal.pause()")
    runtime = LocalRuntime(work_dir, python=python, start_timeout_s=0.5, failure_limit=1)
    observation = await runtime.apply_deployment("stuck", spec(tmp_path))
    assert (observation.replicas, observation.available) == (1, 0)
    [pid] = replica_pids(tmp_path)
    error = await failure(runtime, "stuck", spec(tmp_path))
    assert "did not become ready within 0.5 s" in error.reason
    assert "loading forever" in error.reason
    assert gone(pid)


async def test_zero_replicas_runs_nothing(model_dir: Path, work_dir: Path) -> None:
    before = children()
    runtime = LocalRuntime(work_dir)
    assert await runtime.apply_deployment("idle", spec(model_dir, 0)) == DeploymentObservation(
        0, 0, model_name="double", model_version="1"
    )
    assert children() == before
    assert await runtime.observe_deployment("idle") == DeploymentObservation(
        0, 0, model_name="double", model_version="1"
    )
    assert await runtime.delete_deployment("idle")


async def test_a_deployment_scaled_to_zero_still_names_its_model(model_dir: Path, work_dir: Path) -> None:
    runtime = LocalRuntime(work_dir)
    seen = await runtime.apply_deployment("idle", spec(model_dir, 0))
    assert (seen.replicas, seen.model_name, seen.model_version) == (0, "double", "1")
    await runtime.close()


async def held_properties(observation: DeploymentObservation) -> list[object]:
    """What each available replica says its model properties are."""
    async with httpx.AsyncClient(timeout=10) as client:
        return [(await client.get(f"{url}/api/model/properties")).json() for url in observation.endpoints]


def with_properties(image: Path, replicas: int, **values: object) -> ModelDeploymentSpec:
    return ModelDeploymentSpec(image=str(image), min_replicas=replicas, properties=values)


async def test_every_replica_holds_the_deployments_properties_from_its_start_and_after_each_change(
    summation_model_dir: Path, work_dir: Path
) -> None:
    runtime = LocalRuntime(work_dir)
    started = await converge(runtime, "sum", with_properties(summation_model_dir, 2, multiplier=10), 2)
    assert await held_properties(started) == [{"multiplier": 10}] * 2

    # A change reaches every replica within the same look: none is reported available still holding the old value.
    changed = await runtime.apply_deployment("sum", with_properties(summation_model_dir, 2, multiplier="3"))
    assert (changed.available, await held_properties(changed)) == (2, [{"multiplier": 3}] * 2)
    unset = await runtime.apply_deployment("sum", with_properties(summation_model_dir, 2))
    assert await held_properties(unset) == [{"multiplier": 1}] * 2  # back to the model's own value

    # Only the runtime may change them: a replica refuses a change that does not carry its token.
    async with httpx.AsyncClient(timeout=10) as client:
        direct = await client.put(f"{unset.endpoints[0]}/api/model/properties", json={"multiplier": 5})
    assert direct.status_code == 403, direct.text

    # A replica that dies comes back with the deployment's values; a runtime that adopts the replicas delivers too.
    await converge(runtime, "sum", with_properties(summation_model_dir, 2, multiplier=7), 2)
    victim = min(replica_pids(summation_model_dir))
    os.kill(victim, signal.SIGKILL)
    restarted = await converge(runtime, "sum", with_properties(summation_model_dir, 2, multiplier=7), 2)
    assert gone(victim)
    assert await held_properties(restarted) == [{"multiplier": 7}] * 2
    await runtime.close()
    adopter = LocalRuntime(work_dir)
    adopted = await adopter.apply_deployment("sum", with_properties(summation_model_dir, 2, multiplier=4))
    assert await held_properties(adopted) == [{"multiplier": 4}] * 2
    assert await invoke_summation(adopted.endpoints[0]) == 12


async def invoke_summation(url: str) -> object:
    async with httpx.AsyncClient(timeout=10) as client:
        answer = await client.get(f"{url}/api/model/summation/1.0/invoke", params={"a": 1, "b": 2})
    return answer.json()["result"]


async def test_values_the_model_refuses_fail_the_deployment_until_they_change(
    summation_model_dir: Path, work_dir: Path
) -> None:
    runtime = LocalRuntime(work_dir)
    await converge(runtime, "sum", with_properties(summation_model_dir, 1, multiplier=2), 1)
    error = await failure(runtime, "sum", with_properties(summation_model_dir, 1, multiplier="many"))
    assert "replica 1 refuses the properties" in error.reason
    assert "multiplier: 'many' is not a int" in error.reason
    [url] = (await runtime.observe_deployment("sum") or DeploymentObservation(0, 0)).endpoints
    assert await invoke_summation(url) == 6  # it keeps the values it had
    fixed = await converge(runtime, "sum", with_properties(summation_model_dir, 1, multiplier=5), 1)
    assert await held_properties(fixed) == [{"multiplier": 5}]

"""``Limiter``: finding the cgroup hierarchies, the values written, and real jobs and replicas held to their limits.

The first tests read ``/proc/self/cgroup`` and ``mountinfo`` files written into ``tmp_path`` over a directory tree
laid out as cgroupfs (so both cgroup versions are covered whatever this machine runs). The others start real
trainings and ``legion serve`` replicas in real cgroups, and run only where this machine lets the test make
cgroups (root in the VM or container, or a delegated cgroup v2 subtree); every cgroup they make must be gone after.
"""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pandas as pd
import pytest

import legion.model as lm
from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.jobs import JobObservation, LocalJobs
from legion.api.runtime.limits import Limiter, unit_prefix
from legion.api.runtime.local import LocalRuntime
from legion.core.resources import ModelDeploymentSpec, ModelTrainingSpec, ResourceRequirements
from tests.support.processes import children, no_children_left_since

pytestmark = pytest.mark.anyio

DEADLINE_S = 180.0
ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


# -- finding the hierarchies (files in tmp_path) ----------------------------------------------------------------


def fake_proc(tmp_path: Path, cgroup: str, mountinfo: str) -> Path:
    proc = tmp_path / "proc"
    proc.mkdir()
    (proc / "cgroup").write_text(cgroup)
    (proc / "mountinfo").write_text(mountinfo.replace("ROOT", str(tmp_path)))
    return proc


def test_cgroup_v1_hierarchies_are_found_below_the_apis_own_cgroups(tmp_path: Path) -> None:
    (tmp_path / "memory" / "box" / "api").mkdir(parents=True)
    (tmp_path / "cpu,cpuacct").mkdir()
    proc = fake_proc(
        tmp_path,
        "9:name=systemd:/\n4:memory:/box/api\n2:cpu,cpuacct:/\n0::/\n",
        "30 25 0:26 / ROOT/memory rw,relatime shared:9 - cgroup cgroup rw,memory\n"
        "31 25 0:27 / ROOT/cpu,cpuacct rw,relatime shared:10 - cgroup cgroup rw,cpu,cpuacct\n"
        "32 25 0:28 / ROOT/unified rw,relatime shared:11 - cgroup2 cgroup2 rw\n",
    )
    limiter = Limiter.find(proc)
    assert {c: (h.version, h.parent) for c, h in limiter.hierarchies.items()} == {
        "memory": (1, tmp_path / "memory" / "box" / "api"),
        "cpu": (1, tmp_path / "cpu,cpuacct"),
    }
    cgroup, enforced = limiter.create("legion-x-train", ResourceRequirements(limits={"memory": "64Mi", "cpu": "0.5"}))
    assert cgroup is not None
    unit = tmp_path / "memory" / "box" / "api" / "legion-x-train"
    assert (unit / "memory.limit_in_bytes").read_text() == str(64 * 2**20)
    assert (unit / "memory.memsw.limit_in_bytes").read_text() == str(64 * 2**20)
    cpu = tmp_path / "cpu,cpuacct" / "legion-x-train"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "50000"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert not (cpu / "cpu.shares").exists()  # requests are not enforced: weight as any other process
    assert set(cgroup.procs) == {unit / "cgroup.procs", cpu / "cgroup.procs"}
    assert (enforced.mechanism, enforced.memory, enforced.cpu) == ("cgroup v1", "64Mi", "0.5")
    assert "cpu.cfs_quota_us=50000" in (enforced.detail or "")
    (unit / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    assert cgroup.oom_kills() == 2


def test_cgroup_v2_hands_the_controllers_to_children_and_writes_its_own_files(tmp_path: Path) -> None:
    own = tmp_path / "cg" / "user.slice" / "legion.service"
    own.mkdir(parents=True)
    (own / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (own / "cgroup.subtree_control").write_text("")
    proc = fake_proc(
        tmp_path, "0::/user.slice/legion.service\n", "30 25 0:26 / ROOT/cg rw,relatime - cgroup2 cgroup2 rw\n"
    )
    limiter = Limiter.find(proc)
    assert {c: h.version for c, h in limiter.hierarchies.items()} == {"memory": 2, "cpu": 2}
    assert limiter.why_not is None
    assert (own / "cgroup.subtree_control").read_text() in ("+memory", "+cpu")  # the kernel would keep both
    cgroup, enforced = limiter.create("legion-y-dep-1", ResourceRequirements())
    assert cgroup is not None and cgroup.directories == (own / "legion-y-dep-1",)
    unit = own / "legion-y-dep-1"
    assert (unit / "memory.max").read_text() == str(256 * 2**20)  # Legion's defaults
    assert (unit / "memory.swap.max").read_text() == "0"
    assert (unit / "cpu.max").read_text() == "25600 100000"
    assert not (unit / "cpu.weight").exists()
    assert (enforced.mechanism, enforced.memory, enforced.cpu) == ("cgroup v2", "256Mi", "256m")
    (unit / "memory.events").write_text("low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\n")
    assert cgroup.oom_kills() == 1
    for name in ("memory.max", "memory.swap.max", "cpu.max", "memory.events"):
        (unit / name).unlink()
    assert cgroup.remove() and not unit.exists()


def test_without_cgroups_nothing_is_enforced_and_the_status_says_why(tmp_path: Path) -> None:
    limiter = Limiter.find(tmp_path / "no-proc")
    assert limiter.hierarchies == {}
    enforced = limiter.describe(ResourceRequirements())
    assert enforced.mechanism == "none" and enforced.memory is None and enforced.cpu is None
    assert "limits are not enforced locally: no cgroups here" in (enforced.detail or "")
    assert limiter.create("legion-z", ResourceRequirements()) == (None, enforced)
    off = Limiter.off("switched off (LEGION_API_ENFORCE_LIMITS=false)").describe(ResourceRequirements())
    assert off.mechanism == "none" and "LEGION_API_ENFORCE_LIMITS=false" in (off.detail or "")


# -- real cgroups ---------------------------------------------------------------------------------------------


@pytest.fixture
def limiter() -> Limiter:
    found = Limiter.find()
    if set(found.hierarchies) != {"memory", "cpu"}:
        pytest.skip(f"this machine lets the tests make no memory and cpu cgroups: {found.why_not}")
    return found


@pytest.fixture(autouse=True)
def work_dir(tmp_path: Path) -> Iterator[Path]:
    """The runtimes' work directory; afterwards nothing they started may run and none of their cgroups be left."""
    before = children()
    work = tmp_path / "work"
    yield work
    asyncio.run(LocalRuntime(work, stop_timeout_s=10).stop_all())
    jobs = LocalJobs(work, stop_timeout_s=5, limiter=Limiter.find())
    trainings = work / "trainings"
    for directory in sorted(trainings.iterdir()) if trainings.is_dir() else ():
        asyncio.run(jobs.delete(directory.name))
    no_children_left_since(before)
    prefix = unit_prefix(work)
    cgroups = [p for h in Limiter.find().hierarchies.values() for p in h.parent.glob(f"{prefix}-*")]
    assert not cgroups, f"cgroups left behind: {cgroups}"


def write_script(tmp_path: Path, name: str, text: str) -> Path:
    source = tmp_path / "src"
    source.mkdir(exist_ok=True)
    (source / name).write_text(text)
    return source


def training(entrypoint: str, resources: dict[str, object] | None = None) -> ModelTrainingSpec:
    return ModelTrainingSpec.model_validate(
        {"model": {"name": "m", "version": "1"}, "toolchain": "python", "localPath": "src",
         "entrypoint": entrypoint, "resources": resources}
    )  # fmt: skip


async def ended(jobs: LocalJobs, training_id: str) -> JobObservation:
    end = time.monotonic() + DEADLINE_S
    while (observation := await jobs.observe(training_id)) is not None and observation.state == "running":
        if time.monotonic() > end:
            raise AssertionError(f"training {training_id} still runs after {DEADLINE_S} s")
        await asyncio.sleep(0.05)
    assert observation is not None
    return observation


# Prints the limits of the cgroups it runs in, as the kernel shows them to it (cgroup v1 or v2), then allocates
# (and touches) the number of MiB in its first argument.
HOG = """
import sys
from pathlib import Path
for line in Path("/proc/self/cgroup").read_text().splitlines():
    _, controllers, path = line.split(":", 2)
    for name in ("memory.limit_in_bytes", "memory.max", "cpu.cfs_quota_us", "cpu.max"):
        for mount in ("/sys/fs/cgroup", f"/sys/fs/cgroup/{controllers}"):
            found = Path(mount + path) / name
            if controllers in ("", "memory", "cpu", "cpu,cpuacct") and found.is_file():
                print("limit", name, found.read_text().strip(), flush=True)
ballast = b"x" * (int(sys.argv[1]) * 2**20)
print("allocated", len(ballast) // 2**20, "MiB", flush=True)
"""


async def test_a_training_runs_in_a_cgroup_that_holds_it_to_its_limits(
    limiter: Limiter, work_dir: Path, tmp_path: Path
) -> None:
    source = write_script(tmp_path, "hog.py", HOG)
    jobs = LocalJobs(work_dir, limiter=limiter)
    spec = training("hog.py", {"limits": {"memory": "100Mi", "cpu": "500m"}}).model_copy(update={"args": ["16"]})
    await jobs.start_training("within", spec, source_dir=source)
    observation = await ended(jobs, "within")
    log = jobs.log_path("within").read_text()
    assert observation.exit_code == 0, log  # no model saved: failed, but the script itself ran to its end
    assert "allocated 16 MiB" in log
    seen = {line.split()[1]: line.split(maxsplit=2)[2] for line in log.splitlines() if line.startswith("limit ")}
    assert seen.get("memory.limit_in_bytes", seen.get("memory.max")) == str(100 * 2**20), log
    assert seen.get("cpu.cfs_quota_us", seen.get("cpu.max")) in ("50000", "50000 100000"), log
    assert observation.enforced_limits is not None
    assert (observation.enforced_limits.memory, observation.enforced_limits.cpu) == ("100Mi", "500m")
    assert observation.enforced_limits.mechanism.startswith("cgroup v")


async def test_a_training_over_its_memory_limit_is_stopped_and_the_reason_says_so(
    limiter: Limiter, work_dir: Path, tmp_path: Path
) -> None:
    source = write_script(tmp_path, "hog.py", HOG)
    jobs = LocalJobs(work_dir, limiter=limiter)
    spec = training("hog.py", {"limits": {"memory": "64Mi"}}).model_copy(update={"args": ["512"]})
    await jobs.start_training("hog", spec, source_dir=source)
    observation = await ended(jobs, "hog")
    assert observation.state == "failed"
    assert observation.reason is not None
    assert observation.reason.startswith("exceeded its memory limit 64Mi (killed by the kernel's out-of-memory killer)")
    assert "allocated" not in jobs.log_path("hog").read_text()
    again = await jobs.observe("hog")  # the cgroup is gone by now; what it said is kept
    assert again is not None and again.reason == observation.reason


async def test_a_replica_over_its_memory_limit_fails_the_deployment_with_the_reason(
    limiter: Limiter, work_dir: Path, tmp_path: Path
) -> None:
    builder = lm.ModelBuilder("double", "1")
    builder.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    model = builder.save(tmp_path / "double")
    runtime = LocalRuntime(work_dir, limiter=limiter, failure_limit=1)
    # importing pandas alone takes more than this
    spec = ModelDeploymentSpec(image=str(model), resources={"limits": {"memory": "48Mi"}})
    end = time.monotonic() + DEADLINE_S
    while True:
        try:
            await runtime.apply_deployment("tight", spec)
        except PermanentRuntimeError as exc:
            reason = exc.reason
            break
        assert time.monotonic() < end, "the deployment did not fail"
        await asyncio.sleep(0.1)
    assert reason.startswith(
        "replica 1 exceeded its memory limit 48Mi (killed by the kernel's out-of-memory killer) before becoming ready"
    ), reason


async def test_the_census_example_trains_and_serves_within_legions_default_limits(
    limiter: Limiter, work_dir: Path
) -> None:
    """The defaults (256Mi, 256m) must not kill a real scikit-learn model: the census training and its replica."""
    jobs = LocalJobs(work_dir, limiter=limiter)
    spec = ModelTrainingSpec.model_validate(
        {"model": {"name": "census-income", "version": "1.0"}, "toolchain": "python", "localPath": "examples",
         "workDir": "census_income", "entrypoint": "train.py", "args": ["--output", "{output}"]}
    )  # fmt: skip
    assert spec.resources.limits is not None and spec.resources.limits.memory == "256Mi"
    await jobs.start_training("census", spec, source_dir=ROOT / "examples")
    trained = await ended(jobs, "census")
    assert trained.state == "succeeded", trained.reason
    assert trained.enforced_limits is not None and trained.enforced_limits.memory == "256Mi"
    assert trained.model_dir is not None

    model = shutil.copytree(trained.model_dir, work_dir.parent / "census-model")  # as the API registers it
    runtime = LocalRuntime(work_dir, limiter=limiter)
    deployment = ModelDeploymentSpec(image=str(model))
    end = time.monotonic() + DEADLINE_S
    while (seen := await runtime.apply_deployment("census", deployment)).available < 1:
        assert time.monotonic() < end, "the census replica did not become ready"
        await asyncio.sleep(0.2)
    assert seen.enforced_limits is not None
    assert (seen.enforced_limits.memory, seen.enforced_limits.cpu) == ("256Mi", "256m")
    request = (ROOT / "examples" / "census_income" / "request.json").read_bytes()
    async with httpx.AsyncClient(timeout=60) as client:
        for _ in range(20):
            answer = await client.post(
                f"{seen.endpoints[0]}/api/model/invoke", content=request, headers={"Content-Type": "application/json"}
            )
            assert answer.status_code == 200, answer.text
    assert (await runtime.apply_deployment("census", deployment)).available == 1  # still the same, unharmed
    assert await runtime.delete_deployment("census")

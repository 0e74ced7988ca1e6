"""The reconcile loop over a real SQLite store and the in-memory runtime: convergence, recovery, failures,
deletion, and an idle loop that sleeps."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from legion.api.reconcile import DeploymentController, LoopSettings, Reconciler
from legion.api.runtime.memory import MemoryRuntime
from legion.api.storage import Cipher, ResourceStore, create_engine, migrate, sqlite_url

pytestmark = pytest.mark.anyio
KIND = "ModelDeployment"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def store(tmp_path: Path) -> ResourceStore:
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    return ResourceStore(engine, Cipher([Fernet.generate_key().decode()]))


def deployment_loop(store: ResourceStore, runtime: MemoryRuntime, idle_s: float = 300.0) -> Reconciler:
    """A loop that drives ModelDeployments only, quick to look again."""
    reconciler = Reconciler(store, LoopSettings(resync_s=0.2, progress_s=0.01))
    reconciler.add(DeploymentController(runtime, store=store, progress_s=0.01, idle_s=idle_s))
    return reconciler


@pytest.fixture
async def loop(store: ResourceStore) -> AsyncIterator[tuple[Reconciler, MemoryRuntime]]:
    runtime = MemoryRuntime(start_calls=1)
    reconciler = deployment_loop(store, runtime)
    stop = asyncio.Event()
    task = asyncio.create_task(reconciler.run(stop))
    try:
        yield reconciler, runtime
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def eventually(condition: Callable[[], bool], what: str, deadline_s: float = 20.0) -> None:
    end = time.monotonic() + deadline_s
    while not condition():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


def state(store: ResourceStore, ident: str) -> str | None:
    value = store.get(KIND, ident).status.get("state")
    return str(value) if value is not None else None


def deploy(store: ResourceStore, reconciler: Reconciler, ident: str, replicas: int = 2) -> None:
    store.create(KIND, ident, {"image": "models/x", "minReplicas": replicas, "maxReplicas": max(replicas, 1)})
    reconciler.wake()


async def test_fifty_deployments_created_at_once_converge(
    store: ResourceStore, loop: tuple[Reconciler, MemoryRuntime]
) -> None:
    reconciler, runtime = loop
    for i in range(50):
        deploy(store, reconciler, f"dep-{i}")
    await eventually(lambda: all(state(store, f"dep-{i}") == "Ready" for i in range(50)), "50 deployments Ready")
    assert runtime.running() == {f"dep-{i}": 2 for i in range(50)}
    status = store.get(KIND, "dep-7").status
    assert status["availableReplicas"] == 2
    assert status["serviceURL"] == "memory://dep-7/0"


async def test_an_idle_loop_sleeps(store: ResourceStore, loop: tuple[Reconciler, MemoryRuntime]) -> None:
    reconciler, runtime = loop
    deploy(store, reconciler, "calm")
    await eventually(lambda: state(store, "calm") == "Ready", "Ready")
    passes, applied, revision = reconciler.passes, runtime.applied, store.revision()
    await asyncio.sleep(1.0)  # an idle second: the loop may only make its periodic resync passes (every 0.2 s)
    # at most two wake-ups per resync period (the change-log poll and the deployment's own look) plus slack;
    # a busy loop would make thousands
    assert reconciler.passes - passes <= 2 * (1.0 / 0.2) + 2
    assert runtime.applied - applied <= 1.0 / 0.2 + 1
    assert store.revision() == revision  # nothing rewritten while nothing changed


async def test_lost_replicas_are_replaced(store: ResourceStore, loop: tuple[Reconciler, MemoryRuntime]) -> None:
    reconciler, runtime = loop
    deploy(store, reconciler, "fragile")
    await eventually(lambda: state(store, "fragile") == "Ready", "Ready")
    runtime.kill("fragile")
    await eventually(lambda: runtime.running().get("fragile") == 2 and state(store, "fragile") == "Ready", "recovery")


async def test_scaling_follows_the_spec(store: ResourceStore, loop: tuple[Reconciler, MemoryRuntime]) -> None:
    reconciler, runtime = loop
    deploy(store, reconciler, "scaled", replicas=3)
    await eventually(lambda: runtime.running().get("scaled") == 3, "3 replicas")
    store.update(KIND, "scaled", {"image": "models/x", "minReplicas": 1, "maxReplicas": 1})
    reconciler.wake()
    await eventually(lambda: runtime.running().get("scaled") == 1 and state(store, "scaled") == "Ready", "1 replica")


async def test_permanent_failures_are_reported_and_not_retried(
    store: ResourceStore, loop: tuple[Reconciler, MemoryRuntime]
) -> None:
    reconciler, runtime = loop
    runtime.failures["broken"] = "image 'models/x' is not a model path on this machine"
    deploy(store, reconciler, "broken")
    await eventually(lambda: state(store, "broken") == "Failed", "Failed")
    assert store.get(KIND, "broken").status["reason"] == "image 'models/x' is not a model path on this machine"
    applied = runtime.applied
    await asyncio.sleep(0.5)
    assert runtime.applied == applied  # not retried while the spec stays the same
    del runtime.failures["broken"]
    store.update(KIND, "broken", {"image": "models/y", "minReplicas": 1, "maxReplicas": 1})
    reconciler.wake()
    await eventually(lambda: state(store, "broken") == "Ready", "Ready after the fix")
    assert "reason" not in store.get(KIND, "broken").status


async def test_deleting_stops_the_replicas_then_removes_the_object(
    store: ResourceStore, loop: tuple[Reconciler, MemoryRuntime]
) -> None:
    reconciler, runtime = loop
    deploy(store, reconciler, "doomed")
    await eventually(lambda: runtime.running().get("doomed") == 2, "running")
    store.mark_deleting(KIND, "doomed")
    reconciler.wake()
    await eventually(lambda: "doomed" not in runtime.running() and not store.list(KIND, search="doomed").items, "gone")


async def test_a_demanded_deployment_runs_one_replica_from_zero_then_lets_it_go(store: ResourceStore) -> None:
    runtime = MemoryRuntime(start_calls=1)
    reconciler = deployment_loop(store, runtime, idle_s=0.5)
    stop = asyncio.Event()
    task = asyncio.create_task(reconciler.run(stop))
    try:
        deploy(store, reconciler, "cold", replicas=0)
        await eventually(lambda: state(store, "cold") == "Ready", "Ready at zero")
        assert runtime.running().get("cold") is None
        reconciler.demand("cold")
        await eventually(lambda: store.get(KIND, "cold").status.get("availableReplicas") == 1, "a woken replica")
        assert store.get(KIND, "cold").status["endpoints"] == ["memory://cold/0"]
        await eventually(lambda: runtime.running().get("cold") is None, "the idle replica to go")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_status_says_which_generation_it_describes(
    store: ResourceStore, loop: tuple[Reconciler, MemoryRuntime]
) -> None:
    reconciler, _ = loop
    deploy(store, reconciler, "gen", replicas=1)
    await eventually(lambda: store.get(KIND, "gen").status.get("observedGeneration") == 1, "generation 1 observed")
    store.update(KIND, "gen", {"image": "models/y", "minReplicas": 1, "maxReplicas": 1})
    reconciler.wake()
    await eventually(lambda: store.get(KIND, "gen").status.get("observedGeneration") == 2, "generation 2 observed")

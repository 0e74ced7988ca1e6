"""Concurrent writers on one row, in threads: optimistic concurrency lets exactly one of them win."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import TypeVar

from legion.api.storage import ResourceStore, StoredResource
from legion.core.errors import ConflictError

WRITERS = 8
T = TypeVar("T")


def race(calls: list[Callable[[], T]]) -> list[T | Exception]:
    """Run every call in its own thread, all released at once; each one's result or exception."""
    start = threading.Barrier(len(calls), timeout=30)

    def run(call: Callable[[], T]) -> T | Exception:
        start.wait()
        try:
            return call()
        except Exception as exc:
            return exc

    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(run, calls))


def test_exactly_one_writer_with_the_same_expected_version_wins(store: ResourceStore) -> None:
    store.create("ModelDeployment", "census", {"maxReplicas": 0})

    results = race(
        [
            partial(store.update, "ModelDeployment", "census", {"maxReplicas": n}, expected_version=1)
            for n in range(1, WRITERS + 1)
        ]
    )

    winners = [r for r in results if isinstance(r, StoredResource)]
    losers = [r for r in results if isinstance(r, ConflictError)]
    assert len(winners) == 1, results
    assert len(losers) == WRITERS - 1, results
    stored = store.get("ModelDeployment", "census")
    assert stored == winners[0]
    assert (stored.generation, stored.version) == (2, 2)


def test_writers_that_retry_on_conflict_lose_no_update(store: ResourceStore) -> None:
    store.create("ModelDeployment", "counter", {"count": 0})

    def increment() -> int:
        conflicts = 0
        while True:
            current = store.get("ModelDeployment", "counter")
            try:
                store.update(
                    "ModelDeployment", "counter", {"count": current.spec["count"] + 1}, expected_version=current.version
                )
            except ConflictError:
                conflicts += 1
            else:
                return conflicts

    race([increment] * WRITERS)

    stored = store.get("ModelDeployment", "counter")
    assert stored.spec == {"count": WRITERS}
    assert stored.version == WRITERS + 1


def test_exactly_one_concurrent_create_of_an_id_wins(store: ResourceStore) -> None:
    results = race([partial(store.create, "ModelRoute", "r", {"n": n}) for n in range(WRITERS)])

    winners = [r for r in results if isinstance(r, StoredResource)]
    assert len(winners) == 1, results
    assert all(isinstance(r, ConflictError) for r in results if r not in winners), results
    assert store.get("ModelRoute", "r") == winners[0]
    assert store.revision() == 1


def test_concurrent_writes_get_gap_free_revisions(store: ResourceStore) -> None:
    results = race([partial(store.create, "ModelRoute", f"r{n}", {}) for n in range(WRITERS)])

    assert all(isinstance(r, StoredResource) for r in results), results
    changes = store.changes_since(0)
    assert [c.revision for c in changes] == list(range(1, WRITERS + 1))
    assert sorted(c.id for c in changes) == sorted(f"r{n}" for n in range(WRITERS))

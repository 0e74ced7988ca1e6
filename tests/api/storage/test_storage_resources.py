"""ResourceStore on SQLite and PostgreSQL: CRUD, paging and filters, generation and version, the change log."""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from datetime import UTC

import pytest

from legion.api.storage import MAX_PAGE_SIZE, ChangeAction, ResourceStore
from legion.core.errors import ConflictError, InvalidInputError, NotFoundError

DEPLOYMENT = {"image": "census:1.0", "minReplicas": 1, "maxReplicas": 3, "resources": {"limits": {"cpu": "1"}}}


def test_create_then_get_returns_the_same_resource(store: ResourceStore) -> None:
    created = store.create("ModelDeployment", "census", DEPLOYMENT, {"team": "ml"})

    assert created.kind == "ModelDeployment"
    assert created.id == "census"
    assert created.spec == DEPLOYMENT
    assert created.status == {}
    assert created.labels == {"team": "ml"}
    assert (created.generation, created.version, created.deleting) == (1, 1, False)
    assert created.created_at.tzinfo is UTC
    assert created.created_at == created.updated_at
    assert store.get("ModelDeployment", "census") == created


def test_returned_values_are_copies(store: ResourceStore) -> None:
    spec = {"nested": {"list": [1, 2]}}
    created = store.create("ModelRoute", "r", spec)
    spec["nested"]["list"].append(3)
    created.spec["nested"]["list"].append(4)

    assert store.get("ModelRoute", "r").spec == {"nested": {"list": [1, 2]}}


def test_json_with_unicode_and_nested_values_round_trips(store: ResourceStore) -> None:
    spec = {
        "description": "modèle de revenu — 收入模型 — نموذج 🚀",
        "ключ": "значение",
        "quotes": 'it\'s "quoted" \\ back\\slash\nnew line\ttab',
        "numbers": [0, -1, 2**53 + 1, 0.1, -2.5e-7, 1e300],
        "flags": [True, False, None],
        "empty": {"list": [], "object": {}, "string": ""},
        "deep": {"a": [{"b": [{"c": {"d": ["e", {"f": 1.5}]}}]}]},
    }
    store.create("ModelTraining", "t", spec, {"app.kubernetes.io/name": "ünïcode ✓"})

    stored = store.get("ModelTraining", "t")
    assert stored.spec == spec
    assert stored.labels == {"app.kubernetes.io/name": "ünïcode ✓"}
    assert store.list("ModelTraining", labels={"app.kubernetes.io/name": "ünïcode ✓"}).total == 1


def test_tuples_come_back_as_lists_from_create_and_get_alike(store: ResourceStore) -> None:
    created = store.create("ModelRoute", "r", {"modelDeployments": ({"mdName": "a", "weight": 100},)})

    assert created.spec == {"modelDeployments": [{"mdName": "a", "weight": 100}]}
    assert store.get("ModelRoute", "r").spec == created.spec


def test_duplicate_create_is_a_conflict_naming_the_resource_and_changes_nothing(store: ResourceStore) -> None:
    first = store.create("ModelDeployment", "census", DEPLOYMENT)
    revision = store.revision()

    with pytest.raises(ConflictError) as raised:
        store.create("ModelDeployment", "census", {"image": "other"})

    assert raised.value.status == 409
    assert "ModelDeployment" in raised.value.detail
    assert "'census'" in raised.value.detail
    assert store.get("ModelDeployment", "census") == first
    assert store.revision() == revision


def test_the_same_id_may_be_used_by_different_kinds(store: ResourceStore) -> None:
    store.create("ModelDeployment", "census", DEPLOYMENT)
    store.create("ModelRoute", "census", {"urlPrefix": "/census"})

    assert store.get("ModelRoute", "census").spec == {"urlPrefix": "/census"}
    assert store.list("ModelDeployment").total == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get("ModelDeployment", "missing"),
        lambda s: s.update("ModelDeployment", "missing", {}),
        lambda s: s.update_status("ModelDeployment", "missing", {"state": "Ready"}),
        lambda s: s.mark_deleting("ModelDeployment", "missing"),
        lambda s: s.delete("ModelDeployment", "missing"),
    ],
    ids=["get", "update", "update_status", "mark_deleting", "delete"],
)
def test_a_missing_resource_is_not_found_naming_kind_and_id(
    store: ResourceStore, call: Callable[[ResourceStore], object]
) -> None:
    with pytest.raises(NotFoundError) as raised:
        call(store)

    assert raised.value.detail == "ModelDeployment 'missing' not found"
    assert store.revision() == 0


def test_list_pages_in_id_order_with_the_total(store: ResourceStore) -> None:
    ids = [f"m-{n:02d}" for n in range(25)]
    for resource_id in random.Random(7).sample(ids, len(ids)):
        store.create("ModelPackaging", resource_id, {"n": resource_id})
    store.create("ModelTraining", "m-99", {})

    pages = [store.list("ModelPackaging", page=number, size=10) for number in range(4)]

    assert [len(page.items) for page in pages] == [10, 10, 5, 0]
    assert [item.id for page in pages for item in page.items] == ids
    assert {(page.total, page.size, page.pages) for page in pages} == {(25, 10, 3)}
    assert pages[2].page == 2
    assert store.list("ModelPackaging").items == tuple(item for page in pages for item in page.items)


def test_list_of_an_unknown_kind_is_empty(store: ResourceStore) -> None:
    page = store.list("Nothing")

    assert (page.items, page.total, page.pages) == ((), 0, 0)


def test_list_filters_by_every_given_label(store: ResourceStore) -> None:
    store.create("ModelDeployment", "a", {}, {"team": "ml", "env": "prod"})
    store.create("ModelDeployment", "b", {}, {"team": "ml", "env": "dev"})
    store.create("ModelDeployment", "c", {}, {"team": "ops", "env": "dev"})
    store.create("ModelDeployment", "d", {})

    def ids(**labels: str) -> list[str]:
        return [item.id for item in store.list("ModelDeployment", labels=labels).items]

    assert ids(team="ml") == ["a", "b"]
    assert ids(team="ml", env="dev") == ["b"]
    assert ids(env="dev") == ["b", "c"]
    assert ids(team="nobody") == []
    assert ids() == ["a", "b", "c", "d"]
    assert store.list("ModelDeployment", labels={"team": "ml"}, page=1, size=1).total == 2


def test_list_searches_ids_by_substring_ignoring_case_and_wildcards(store: ResourceStore) -> None:
    for resource_id in ["census-a", "census_b", "censusXb", "digits", "Census-Upper"]:
        store.create("ModelDeployment", resource_id, {}, {"team": "ml"} if resource_id != "census-a" else {})

    def ids(search: str, **labels: str) -> list[str]:
        return [item.id for item in store.list("ModelDeployment", search=search, labels=labels).items]

    assert ids("census") == ["Census-Upper", "census-a", "censusXb", "census_b"]  # by code point
    assert ids("CENSUS-") == ["Census-Upper", "census-a"]
    assert ids("s_b") == ["census_b"]  # "_" is a character, not a LIKE wildcard
    assert ids("%") == []
    assert ids("census", team="ml") == ["Census-Upper", "censusXb", "census_b"]
    assert store.list("ModelDeployment", search="census", size=2).total == 4


def test_update_bumps_generation_and_version(store: ResourceStore) -> None:
    created = store.create("ModelDeployment", "census", DEPLOYMENT, {"team": "ml"})

    updated = store.update("ModelDeployment", "census", {**DEPLOYMENT, "maxReplicas": 5}, expected_version=1)

    assert (updated.generation, updated.version) == (2, 2)
    assert updated.spec["maxReplicas"] == 5
    assert updated.labels == {"team": "ml"}  # labels=None keeps them
    assert updated.created_at == created.created_at
    assert updated.updated_at > created.updated_at
    assert store.get("ModelDeployment", "census") == updated


def test_update_with_the_same_spec_moves_the_version_only(store: ResourceStore) -> None:
    store.create("ModelDeployment", "census", DEPLOYMENT, {"team": "ml"})

    relabelled = store.update("ModelDeployment", "census", dict(DEPLOYMENT), {"team": "ops"})

    assert (relabelled.generation, relabelled.version) == (1, 2)
    assert relabelled.labels == {"team": "ops"}
    assert store.update("ModelDeployment", "census", DEPLOYMENT, {}).labels == {}


def test_update_with_a_stale_version_is_a_conflict_and_changes_nothing(store: ResourceStore) -> None:
    store.create("ModelDeployment", "census", DEPLOYMENT)
    current = store.update("ModelDeployment", "census", {**DEPLOYMENT, "minReplicas": 2})

    with pytest.raises(ConflictError) as raised:
        store.update("ModelDeployment", "census", {**DEPLOYMENT, "minReplicas": 0}, expected_version=1)

    assert "version 2, not 1" in raised.value.detail
    assert store.get("ModelDeployment", "census") == current


def test_update_status_keeps_the_generation(store: ResourceStore) -> None:
    store.create("ModelDeployment", "census", DEPLOYMENT)
    status = {"state": "Ready", "replicas": 1, "availableReplicas": 1, "serviceURL": "http://127.0.0.1:9000"}

    reported = store.update_status("ModelDeployment", "census", status, expected_generation=1)

    assert reported.status == status
    assert (reported.generation, reported.version) == (1, 2)
    assert reported.spec == DEPLOYMENT
    assert store.get("ModelDeployment", "census") == reported


def test_update_status_for_an_old_generation_is_a_conflict(store: ResourceStore) -> None:
    store.create("ModelDeployment", "census", DEPLOYMENT)
    store.update("ModelDeployment", "census", {**DEPLOYMENT, "image": "census:2.0"})

    with pytest.raises(ConflictError) as raised:
        store.update_status("ModelDeployment", "census", {"state": "Ready"}, expected_generation=1)

    assert "generation 2, not 1" in raised.value.detail
    assert store.get("ModelDeployment", "census").status == {}


def test_mark_deleting_then_delete(store: ResourceStore) -> None:
    store.create("ModelDeployment", "census", DEPLOYMENT)

    deleting = store.mark_deleting("ModelDeployment", "census")
    again = store.mark_deleting("ModelDeployment", "census")

    assert deleting.deleting
    assert (deleting.generation, deleting.version) == (1, 2)
    assert again == deleting  # idempotent: no second write
    with pytest.raises(ConflictError, match="being deleted"):
        store.update("ModelDeployment", "census", DEPLOYMENT)
    teardown = store.update_status("ModelDeployment", "census", {"state": "Deleting"})
    assert teardown.deleting

    store.delete("ModelDeployment", "census")

    with pytest.raises(NotFoundError):
        store.get("ModelDeployment", "census")
    assert store.list("ModelDeployment").total == 0
    store.create("ModelDeployment", "census", DEPLOYMENT)  # the id is free again


def test_kinds_count_by_kind_and_state(store: ResourceStore) -> None:
    for name in ("a", "b", "c"):
        store.create("ModelDeployment", name, DEPLOYMENT)
    store.update_status("ModelDeployment", "a", {"state": "Ready"})
    store.update_status("ModelDeployment", "b", {"state": "Ready"})
    store.create("Connection", "git", {"type": "git"})

    assert store.kinds_count() == {"ModelDeployment": {"Ready": 2, "": 1}, "Connection": {"": 1}}


def test_every_write_is_one_change_in_revision_order(store: ResourceStore) -> None:
    assert store.revision() == 0
    store.create("ModelDeployment", "census", DEPLOYMENT)
    store.update("ModelDeployment", "census", {**DEPLOYMENT, "maxReplicas": 4})
    store.update_status("ModelDeployment", "census", {"state": "Ready"})
    store.get("ModelDeployment", "census")  # reads are no change
    store.list("ModelDeployment")
    store.kinds_count()
    assert store.revision() == 3
    store.mark_deleting("ModelDeployment", "census")
    store.delete("ModelDeployment", "census")

    changes = store.changes_since(0)

    assert store.revision() == 5
    assert [(c.revision, c.action, c.generation) for c in changes] == [
        (1, ChangeAction.CREATED, 1),
        (2, ChangeAction.UPDATED, 2),
        (3, ChangeAction.STATUS, 2),
        (4, ChangeAction.DELETING, 2),
        (5, ChangeAction.DELETED, 2),
    ]
    assert {(c.kind, c.id) for c in changes} == {("ModelDeployment", "census")}
    assert all(c.at.tzinfo is UTC for c in changes)
    assert [c.revision for c in store.changes_since(3)] == [4, 5]
    assert [c.revision for c in store.changes_since(1, limit=2)] == [2, 3]
    assert store.changes_since(5) == ()


def test_pruned_changes_are_gone_but_the_revision_stays(store: ResourceStore) -> None:
    for name in ("a", "b", "c", "d"):
        store.create("ModelRoute", name, {})

    assert store.prune_changes(before=3) == 2

    assert [c.revision for c in store.changes_since(0)] == [3, 4]
    assert store.revision() == 4
    store.create("ModelRoute", "e", {})
    assert store.revision() == 5


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda s: s.create("ModelRoute", "", {}), "id"),
        (lambda s: s.create("", "r", {}), "kind"),
        (lambda s: s.create("ModelRoute", "r" * 254, {}), "id"),
        (lambda s: s.create("ModelRoute", "r", {"when": object()}), "spec"),
        (lambda s: s.create("ModelRoute", "r", {"weight": math.nan}), "spec"),
        (lambda s: s.create("ModelRoute", "r", ["not", "an", "object"]), "spec"),
        (lambda s: s.create("ModelRoute", "r", {}, {"bad key!": "x"}), "labels.bad key!"),
        (lambda s: s.create("ModelRoute", "r", {}, {"team": 1}), "labels.team"),
        (lambda s: s.list("ModelRoute", page=-1), "page"),
        (lambda s: s.list("ModelRoute", size=0), "size"),
        (lambda s: s.list("ModelRoute", size=MAX_PAGE_SIZE + 1), "size"),
        (lambda s: s.update_status("ModelRoute", "r", {"at": {1, 2}}), "status"),
    ],
    ids=[
        "empty-id",
        "empty-kind",
        "long-id",
        "object-in-spec",
        "nan-in-spec",
        "spec-not-object",
        "label-key",
        "label-value",
        "negative-page",
        "zero-size",
        "huge-size",
        "set-in-status",
    ],
)
def test_bad_arguments_are_invalid_input_naming_the_field(
    store: ResourceStore, call: Callable[[ResourceStore], object], field: str
) -> None:
    with pytest.raises(InvalidInputError) as raised:
        call(store)

    assert field in raised.value.fields
    assert store.revision() == 0

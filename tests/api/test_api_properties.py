"""``/api/v1/model/deployment/{id}/property``: a deployment's model properties through the management API.

A real API with the local runtime serving the summation example (one replica) and a resync of an hour, so a value
that reaches the replica got there because the write woke the reconcile loop, not because a periodic look came by.
Roles (data scientists and admins set, viewers read), every refusal naming the property, the write in the store's
change log, and a deployment applied with values its model does not take.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import httpx
import pytest

from legion.api.storage import ChangeAction, Cipher, ResourceStore, create_engine, sqlite_url
from tests.api.conftest import cli_token, start_api
from tests.support.server import ServerProcess, wait_until

pytestmark = pytest.mark.slow
DEADLINE_S = 120.0
PATH = "/api/v1/model/deployment"


@dataclass
class Served:
    server: ServerProcess
    data_dir: Path
    tokens: dict[str, str]

    def call(self, method: str, path: str, role: str = "data-scientist", **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.tokens[role]}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.server.url}{PATH}{path}", headers=headers, timeout=30, **kwargs)

    def replica_values(self) -> list[Any]:
        endpoints = self.call("GET", "/sum").json()["status"].get("endpoints", [])
        return [httpx.get(f"{url}/api/model/properties", timeout=10).json() for url in endpoints]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, summation_model_dir: Path) -> Iterator[Served]:
    data_dir = tmp_path_factory.mktemp("properties") / "legion"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("LEGION_API_RESYNC_S", "3600")
        server = start_api(data_dir, "--runtime", "local")
    try:
        roles = ("admin", "data-scientist", "viewer")
        running = Served(server, data_dir, {role: cli_token(data_dir, role) for role in roles})
        created = running.call("POST", "", json={"id": "sum", "spec": {"image": str(summation_model_dir)}})
        assert created.status_code == 201, created.text
        wait_until(lambda: running.replica_values() == [{"multiplier": 1}], DEADLINE_S, "a ready replica")
        yield running
        running.call("DELETE", "/sum")
        wait_until(lambda: running.call("GET", "/sum").status_code == 404, DEADLINE_S, "the deployment to go")
    finally:
        server.stop()


def test_a_data_scientist_sets_a_property_and_the_replica_has_it_without_waiting_for_a_resync(served: Served) -> None:
    store = ResourceStore(create_engine(sqlite_url(served.data_dir)), Cipher([Cipher.generate_key()]))
    before, generation = store.revision(), store.get("ModelDeployment", "sum").generation

    answer = served.call("PUT", "/sum/property/multiplier", json="4")  # text, read as the property's type
    assert answer.status_code == 200, answer.text
    assert answer.json() == {"name": "multiplier", "value": 4, "modelValue": 1}
    wait_until(lambda: served.replica_values() == [{"multiplier": 4}], 30, "the value in the replica")

    changes = [c for c in store.changes_since(before) if c.action != ChangeAction.STATUS]
    assert [(c.kind, c.id, c.action, c.generation) for c in changes] == [
        ("ModelDeployment", "sum", ChangeAction.UPDATED, generation + 1)
    ]
    assert served.call("GET", "/sum", role="viewer").json()["spec"]["properties"] == {"multiplier": 4}
    listed = served.call("GET", "/sum/property", role="viewer")
    assert listed.json() == [{"name": "multiplier", "value": 4, "modelValue": 1}]
    one = served.call("GET", "/sum/property/multiplier", role="viewer")
    assert one.json() == {"name": "multiplier", "value": 4, "modelValue": 1}
    assert served.call("PUT", "/sum/property/multiplier", role="admin", json=1).status_code == 200
    wait_until(lambda: served.replica_values() == [{"multiplier": 1}], 30, "the admin's value in the replica")


class Refusal(NamedTuple):
    method: str
    path: str
    body: Any
    role: str
    status: int
    named: str | None


REFUSALS = [
    Refusal("PUT", "/sum/property/multiplier", 9, "viewer", 403, None),
    Refusal("PUT", "/sum/property/ghost", 1, "data-scientist", 422, "ghost"),
    Refusal("PUT", "/sum/property/multiplier", "many", "data-scientist", 422, "multiplier"),
    Refusal("PUT", "/sum/property/multiplier", 2.5, "data-scientist", 422, "multiplier"),
    Refusal("PUT", "/sum/property/multiplier", [2], "data-scientist", 422, "multiplier"),
    Refusal("PUT", "/sum/property/multiplier", None, "data-scientist", 422, "multiplier"),
    Refusal("PUT", "/nothing/property/multiplier", 2, "data-scientist", 404, None),
    Refusal("GET", "/sum/property/ghost", None, "viewer", 404, None),
]


@pytest.mark.parametrize("case", REFUSALS, ids=[f"{c.method} {c.path} {c.body!r} as {c.role}" for c in REFUSALS])
def test_a_refused_property_request_says_why_and_changes_nothing(served: Served, case: Refusal) -> None:
    generation = served.call("GET", "/sum").json()["metadata"]["generation"]
    sent = {"content": json.dumps(case.body), "headers": {"Content-Type": "application/json"}}
    answer = served.call(case.method, case.path, role=case.role, **(sent if case.method == "PUT" else {}))
    assert answer.status_code == case.status, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    if case.named is not None:
        assert list(answer.json()["errors"]) == [case.named]
        assert case.named in answer.json()["detail"]
    assert served.call("GET", "/sum").json()["metadata"]["generation"] == generation


def test_a_body_that_is_not_json_is_a_400(served: Served) -> None:
    for content in (b"", b"{not json"):
        answer = served.call("PUT", "/sum/property/multiplier", content=content, headers={})
        assert answer.status_code == 400, answer.text


def test_a_deployment_applied_with_values_its_model_does_not_take_is_refused_naming_them(
    served: Served, summation_model_dir: Path
) -> None:
    document = {"id": "sum", "spec": {"image": str(summation_model_dir), "properties": {"ghost": 1, "multiplier": "x"}}}
    refused = served.call("PUT", "/sum", json=document)
    assert refused.status_code == 422, refused.text
    assert set(refused.json()["errors"]) == {"spec.properties.ghost", "spec.properties.multiplier"}
    document["spec"]["properties"] = {"multiplier": 6}
    assert served.call("PUT", "/sum", json=document).status_code == 200
    wait_until(lambda: served.replica_values() == [{"multiplier": 6}], 30, "the applied value in the replica")
    document["spec"].pop("properties")
    assert served.call("PUT", "/sum", json=document).status_code == 200
    wait_until(lambda: served.replica_values() == [{"multiplier": 1}], 30, "the model's own value again")


def test_a_deployment_whose_model_cannot_be_read_is_a_409(served: Served, tmp_path: Path) -> None:
    (tmp_path / "not-a-model").mkdir()
    created = served.call("POST", "", json={"id": "empty", "spec": {"image": str(tmp_path / "not-a-model")}})
    assert created.status_code == 201, created.text
    try:
        answer = served.call("PUT", "/empty/property/multiplier", json=2)
        assert answer.status_code == 409, answer.text
        assert "is not a Legion model" in answer.json()["detail"]
        assert served.call("GET", "/empty/property").json() == []
    finally:
        served.call("DELETE", "/empty")

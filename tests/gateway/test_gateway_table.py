"""What a path addresses, how a snapshot is read, and how a route's weights are honoured (pure functions)."""

from __future__ import annotations

from collections import Counter

import pytest

from legion.core.errors import InvalidInputError
from legion.gateway.balancing import Replicas, WeightedChoice
from legion.gateway.table import RoutingTable, resolve
from tests.gateway.conftest import deployment, route, snapshot

TABLE = RoutingTable.parse(snapshot(
    [deployment("census", ["http://127.0.0.1:1"], ("census", "1")),
     deployment("census-2", ["http://127.0.0.1:2"], ("census", "2")),
     deployment("cold", [], min_replicas=0)],
    [route("split", "/census", {"census": 90, "census-2": 10}, mirror="cold"),
     route("deep", "/census/v2", {"census-2": 100}), route("root", "/", {"census": 100})],
))  # fmt: skip

CASES = [
    # path, kind, deployment or route, path sent to the replica, open (no token needed)
    ("/model/census/api/model/invoke", "deployment", "census", "/api/model/invoke", False),
    ("/model/census/api/model/info", "deployment", "census", "/api/model/info", False),
    ("/model/census", "deployment", "census", "/", False),
    ("/model/census/healthcheck", "deployment", "census", "/healthcheck", True),
    ("/model/census/v2/health/ready", "deployment", "census", "/v2/health/ready", True),
    ("/model/census/metrics", "deployment", "census", "/metrics", True),
    ("/api/model/census/1/invoke", "version", None, "/api/model/census/1/invoke", False),
    ("/api/model/census/2/invoke/proba", "version", None, "/api/model/census/2/invoke/proba", False),
    ("/api/model/census/2/info", "version", None, "/api/model/census/2/info", False),
    ("/api/model/census/2/batch", "version", None, "/api/model/census/2/batch", False),
    ("/api/model/census/1/feedback", "feedback", None, "/api/model/census/1/feedback", False),
    ("/feedback/model/census", "feedback", "census", "/feedback/model/census", False),
    ("/census/api/model/invoke", "route", "split", "/api/model/invoke", False),
    ("/census", "route", "split", "/", False),
    ("/census/v2/invocations", "route", "deep", "/invocations", False),  # the longest prefix wins
    ("/census/healthcheck", "route", "split", "/healthcheck", True),
    ("/censusx/invoke", "route", "root", "/censusx/invoke", False),  # a prefix ends at a slash
    ("/api/model/invoke", "route", "root", "/api/model/invoke", False),  # era-b at the root is no version path
]


@pytest.mark.parametrize(("path", "kind", "name", "sent", "open_"), CASES, ids=[c[0] for c in CASES])
def test_paths_resolve_to_their_target(path: str, kind: str, name: str | None, sent: str, open_: bool) -> None:
    target = resolve(TABLE, path.encode())
    assert target is not None
    assert (target.kind, target.path.decode(), target.open) == (kind, sent, open_)
    if kind == "route":
        assert target.route is not None and target.route.id == name
    elif name is not None:
        assert target.deployment == name


def test_without_a_catch_all_route_unknown_paths_resolve_to_nothing() -> None:
    table = RoutingTable.parse(snapshot([deployment("a", [])], [route("r", "/r", {"a": 100})]))
    for path in ["/", "/x/invoke", "/model/", "/feedback/model/", "/feedback/model/a/b", "/api/model/x/1/other"]:
        assert resolve(table, path.encode()) is None, path


def test_model_versions_are_indexed_by_name_and_version() -> None:
    assert TABLE.by_model[("census", "2")] == ("census-2",)
    assert ("cold", "1") not in TABLE.by_model  # no replica has said what it serves yet


def test_a_malformed_snapshot_is_refused_naming_the_fields() -> None:
    with pytest.raises(InvalidInputError, match=r"routes\.0\.urlPrefix"):
        RoutingTable.parse({"etag": "1", "routes": [{"id": "r", "modelDeployments": []}]})


@pytest.mark.parametrize("weights", [{"a": 90, "b": 10}, {"a": 50, "b": 50}, {"a": 33, "b": 33, "c": 34}])
def test_weighted_choice_gives_each_deployment_its_exact_share(weights: dict[str, int]) -> None:
    choice = WeightedChoice()
    split = route("r", "/r", weights)
    table = RoutingTable.parse(snapshot([deployment(d, []) for d in weights], [split]))
    counts = Counter(choice.pick(table.routes[0]) for _ in range(10_000))
    assert counts == {d: w * 100 for d, w in weights.items()}


def test_weighted_choice_interleaves_rather_than_sending_runs() -> None:
    table = RoutingTable.parse(
        snapshot([deployment("a", []), deployment("b", [])], [route("r", "/r", {"a": 90, "b": 10})])
    )
    choice = WeightedChoice()
    picks = [choice.pick(table.routes[0]) for _ in range(20)]
    assert picks.count("b") == 2 and picks[:10].count("b") == 1


def test_weighted_choice_skips_deployments_that_do_not_exist() -> None:
    table = RoutingTable.parse(snapshot([deployment("a", [])], [route("r", "/r", {"a": 50, "gone": 50})]))
    choice = WeightedChoice()
    assert {choice.pick(table.routes[0], frozenset({"a"})) for _ in range(10)} == {"a"}
    assert choice.pick(table.routes[0], frozenset()) is None


def test_replicas_take_turns_and_an_ejected_one_goes_last() -> None:
    replicas = Replicas(eject_s=60)
    endpoints = ("x", "y", "z")
    assert [replicas.order("d", endpoints)[0] for _ in range(6)] == ["x", "y", "z", "x", "y", "z"]
    replicas.eject("y")
    orders = [replicas.order("d", endpoints) for _ in range(3)]
    assert all(order[-1] == "y" and sorted(order) == ["x", "y", "z"] for order in orders)
    replicas.restore("y")
    assert {replicas.order("d", endpoints)[0] for _ in range(3)} == {"x", "y", "z"}

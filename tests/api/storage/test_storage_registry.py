"""The model registry and token revocations, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from legion.api.storage import ModelRegistry, ModelVersion, TokenRevocations
from legion.core.errors import ConflictError, InvalidInputError, NotFoundError

MANIFEST = {
    "name": "census",
    "version": "1.0",
    "flavor": "python_function",
    "endpoints": {"default": {"columns": [{"name": "âge", "dtype": "int64"}], "dataframe": True}},
    "requirements": ["scikit-learn==1.5.0"],
}


def register(registry: ModelRegistry, name: str = "census", version: str = "1.0") -> ModelVersion:
    return registry.register(
        name,
        version,
        manifest={**MANIFEST, "name": name, "version": version},
        metrics={"accuracy": 0.861, "f1": [0.5, 0.9]},
        source="train-census-1",
        artifact_uri=f"file:///var/lib/legion/models/{name}-{version}.zip",
    )


def test_register_then_get(registry: ModelRegistry) -> None:
    registered = register(registry)

    fetched = registry.get("census", "1.0")

    assert fetched == registered
    assert fetched.manifest["endpoints"]["default"]["columns"][0]["name"] == "âge"
    assert fetched.metrics == {"accuracy": 0.861, "f1": [0.5, 0.9]}
    assert (fetched.source, fetched.artifact_uri) == ("train-census-1", "file:///var/lib/legion/models/census-1.0.zip")
    assert fetched.created_at.tzinfo is UTC


def test_metrics_default_to_empty(registry: ModelRegistry) -> None:
    version = registry.register("digits", "1", manifest={}, source="import", artifact_uri="file:///m")

    assert version.metrics == {}
    assert registry.get("digits", "1").metrics == {}


def test_a_registered_version_cannot_be_registered_again(registry: ModelRegistry) -> None:
    first = register(registry)

    with pytest.raises(ConflictError, match=r"model 'census' version '1\.0' is already registered"):
        register(registry)

    assert registry.get("census", "1.0") == first


def test_list_all_or_one_model_with_paging(registry: ModelRegistry) -> None:
    for version in ("1.0", "1.1", "2.0"):
        register(registry, "census", version)
    register(registry, "digits", "1")

    everything = registry.list()
    census = registry.list("census")
    second_page = registry.list("census", page=1, size=2)

    assert [(v.name, v.version) for v in everything.items] == [
        ("census", "1.0"),
        ("census", "1.1"),
        ("census", "2.0"),
        ("digits", "1"),
    ]
    assert (census.total, len(census.items)) == (3, 3)
    assert ([v.version for v in second_page.items], second_page.total, second_page.pages) == (["2.0"], 3, 2)
    assert registry.list("unknown").total == 0


def test_delete_and_not_found(registry: ModelRegistry) -> None:
    register(registry)

    registry.delete("census", "1.0")

    with pytest.raises(NotFoundError, match=r"model 'census' version '1\.0' is not registered"):
        registry.get("census", "1.0")
    with pytest.raises(NotFoundError):
        registry.delete("census", "1.0")


def test_bad_registry_arguments_are_invalid_input(registry: ModelRegistry) -> None:
    with pytest.raises(InvalidInputError) as raised:
        registry.register("", "1", manifest={}, source="import", artifact_uri="file:///m")
    assert "name" in raised.value.fields
    with pytest.raises(InvalidInputError) as raised:
        registry.register("m", "1", manifest={"x": object()}, source="import", artifact_uri="file:///m")
    assert "manifest" in raised.value.fields
    assert registry.list().total == 0


def test_revoked_tokens_are_revoked_until_pruned(revocations: TokenRevocations) -> None:
    now = datetime.now(UTC)
    revocations.revoke("expired-jti", now - timedelta(minutes=1))
    revocations.revoke("live-jti", now + timedelta(hours=1))
    revocations.revoke("live-jti", now + timedelta(hours=1))  # again: no error

    assert revocations.is_revoked("live-jti")
    assert revocations.is_revoked("expired-jti")
    assert not revocations.is_revoked("never-revoked")

    assert revocations.prune(now) == 1

    assert revocations.is_revoked("live-jti")
    assert not revocations.is_revoked("expired-jti")
    assert revocations.prune(now + timedelta(hours=2)) == 1
    assert not revocations.is_revoked("live-jti")


def test_expiry_times_in_other_zones_are_compared_in_utc(revocations: TokenRevocations) -> None:
    plus_two = datetime(2030, 1, 1, 12, 0, tzinfo=UTC).astimezone(timezone_plus(2))
    revocations.revoke("jti", plus_two)

    assert revocations.prune(datetime(2030, 1, 1, 11, 59, tzinfo=UTC)) == 0
    assert revocations.prune(datetime(2030, 1, 1, 12, 0, tzinfo=UTC)) == 1


def test_naive_times_are_refused(revocations: TokenRevocations) -> None:
    with pytest.raises(InvalidInputError) as raised:
        revocations.revoke("jti", datetime(2030, 1, 1))  # a naive time is the point

    assert "expires_at" in raised.value.fields
    assert not revocations.is_revoked("jti")


def timezone_plus(hours: int) -> timezone:
    return timezone(timedelta(hours=hours))

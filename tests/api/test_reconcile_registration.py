"""``DeployedModels`` over a real registry (SQLite in ``tmp_path``): which builds count as the registered version,
and which images register nothing."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from legion.api.reconcile.registration import DeployedModels, same_build
from legion.api.storage import ModelRegistry, create_engine, migrate, sqlite_url
from legion.core.errors import ConflictError
from legion.model import ModelBuilder
from legion.model.manifest import Manifest


@pytest.fixture
def registry(tmp_path: Path) -> ModelRegistry:
    engine = create_engine(sqlite_url(tmp_path / "db"))
    migrate(engine)
    return ModelRegistry(engine)


def save(path: Path, name: str = "adder", version: str = "1") -> Path:
    builder = ModelBuilder(name, version)
    builder.export_df(lambda df: df["a"] + 1, pd.DataFrame({"a": [1, 2]}))
    builder.define_property("threshold", 0.5)
    return builder.save(path)


def models_for(registry: ModelRegistry, root: Path) -> DeployedModels:
    """Images are paths under ``root``, as ``Confinement.model_path`` would allow."""
    return DeployedModels(registry, lambda image: (root / image) if (root / image).exists() else None)


def test_metrics_and_properties_changed_after_the_build_are_the_same_build(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    model = save(tmp_path / "model")
    manifest = Manifest.read(model).model_dump(mode="json", by_alias=True, exclude_none=True)
    tuned = {**manifest, "metrics": {"accuracy": 0.9}, "properties": {"threshold": 0.7}}
    registry.register("adder", "1", manifest=tuned, source="train-adder", artifact_uri="/elsewhere")
    assert same_build(tuned, manifest)
    registered = models_for(registry, tmp_path).register("adder", "model")
    assert registered is not None
    assert (registered.source, registered.artifact_uri) == ("train-adder", "/elsewhere")  # linked, not re-registered
    assert registry.list("adder").total == 1


def test_a_new_save_under_the_same_version_is_another_build(registry: ModelRegistry, tmp_path: Path) -> None:
    models = models_for(registry, tmp_path)
    save(tmp_path / "first")
    first = models.register("adder", "first")
    assert first is not None and first.source == "deployment/adder"
    save(tmp_path / "again")  # the same code, saved again: a new createdAt
    with pytest.raises(ConflictError, match=r"another build of adder:1 is registered \(source deployment/adder"):
        models.register("adder-again", "again")
    assert registry.get("adder", "1").artifact_uri == str(tmp_path / "first")


def test_images_that_are_no_readable_model_or_have_a_reserved_name_register_nothing(
    registry: ModelRegistry, tmp_path: Path
) -> None:
    models = models_for(registry, tmp_path)
    (tmp_path / "not-a-model").mkdir()
    save(tmp_path / "reserved", name="token")
    assert models.register("a", "registry.example/census:1.0") is None
    assert models.register("b", "not-a-model") is None
    assert models.register("c", "reserved") is None
    assert registry.list().total == 0

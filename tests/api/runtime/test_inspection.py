"""``inspect_model``: a model is loaded in the sandbox to be checked, so its code never runs in the API."""

from __future__ import annotations

import pickle
from pathlib import Path

import pandas as pd
import pytest

from legion.api.runtime.inspection import inspect_model
from legion.api.runtime.sandbox import Sandbox
from legion.core.errors import ModelFormatError
from legion.model import ModelBuilder


class Thief:
    """Unpickling it copies ``source`` to ``target``: what a hostile model would do to the API's keys."""

    def __init__(self, source: Path, target: Path) -> None:
        self.source, self.target = source, target

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return exec, (f"import shutil; shutil.copy({str(self.source)!r}, {str(self.target)!r})",)


@pytest.fixture
def model(tmp_path: Path) -> Path:
    builder = ModelBuilder("double", "1")
    builder.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    return builder.save(tmp_path / "model")


def test_a_model_that_loads_gives_its_manifest(model: Path) -> None:
    manifest = inspect_model(model, Sandbox())
    assert (manifest.name, manifest.version) == ("double", "1")


def test_a_model_whose_code_reaches_for_the_keys_finds_nothing_and_is_refused(model: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "keys.json").write_text("secret")
    stolen = tmp_path / "stolen.json"
    for artifact in model.rglob("*.pkl"):
        artifact.write_bytes(pickle.dumps(Thief(data / "keys.json", stolen)))
    with pytest.raises(ModelFormatError, match=r"cannot unpickle default\.pkl: FileNotFoundError"):
        inspect_model(model, Sandbox(hidden=(data,)))
    assert not stolen.exists()


def test_a_directory_that_is_not_a_model_names_its_problem(tmp_path: Path) -> None:
    with pytest.raises(ModelFormatError, match=r"legion\.model\.yaml"):
        inspect_model(tmp_path, Sandbox())

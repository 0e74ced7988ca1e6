"""``saved_manifest``: a saved model's manifest read without loading it, from a directory, a ``.zip`` or a local
package; anything else is a ``ModelFormatError`` naming the path."""

from __future__ import annotations

import re
import zipfile
from pathlib import Path

import pandas as pd
import pytest

from legion.core.errors import ModelFormatError
from legion.model import MANIFEST_NAME, ModelBuilder
from legion.model.manifest import MAX_MANIFEST_BYTES, Manifest, saved_manifest
from legion.model.package import build_package


def _doubler(path: Path) -> Path:
    builder = ModelBuilder("doubler", "3")
    builder.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    builder.send_metric("accuracy", 0.5)
    return builder.save(path)


def test_a_directory_a_zip_and_a_package_give_the_same_manifest(tmp_path: Path) -> None:
    directory = _doubler(tmp_path / "model")
    expected = Manifest.read(directory)
    with zipfile.ZipFile(tmp_path / "model.zip", "w") as archive:
        for file in directory.iterdir():
            archive.write(file, file.name)
    build_package(directory, tmp_path / "package")
    for path in (directory, tmp_path / "model.zip", tmp_path / "package"):
        manifest = saved_manifest(path)
        assert manifest == expected, path
    assert (expected.name, expected.version, expected.metrics) == ("doubler", "3", {"accuracy": 0.5})


def test_what_holds_no_legion_manifest_is_named(tmp_path: Path) -> None:
    mlflow = tmp_path / "mlflow"
    mlflow.mkdir()
    (mlflow / "MLmodel").write_text("flavors: {}\n")
    with pytest.raises(ModelFormatError, match=re.escape(f"mlflow has no {MANIFEST_NAME}")):
        saved_manifest(mlflow)
    with zipfile.ZipFile(tmp_path / "empty.zip", "w") as archive:
        archive.writestr("other.txt", "x")
    with pytest.raises(ModelFormatError, match=re.escape(f"empty.zip has no {MANIFEST_NAME}")):
        saved_manifest(tmp_path / "empty.zip")
    (tmp_path / "plain.txt").write_text("x")
    with pytest.raises(ModelFormatError, match=re.escape("plain.txt is neither a model directory nor a .zip")):
        saved_manifest(tmp_path / "plain.txt")


def test_a_zipped_manifest_is_never_inflated_past_the_limit(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bomb.zip", "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr(MANIFEST_NAME, "#" * (MAX_MANIFEST_BYTES + 1))
    with pytest.raises(ModelFormatError, match="is over"):
        saved_manifest(tmp_path / "bomb.zip")

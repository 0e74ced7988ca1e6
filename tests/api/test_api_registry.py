"""``/api/v1/model``: a model path the OS cannot take is the caller's mistake, a 422 naming ``path``, never a 500;
an imported model is registered as imported."""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest

from legion.model import ModelBuilder
from tests.api.conftest import Api

BAD_PATHS = {
    "a NUL byte": "/tmp/model\x00.zip",
    "a name over 255 bytes": "/tmp/" + "m" * 300,
    "a path that is not there": "/nonexistent/model",
}


@pytest.mark.parametrize("path", BAD_PATHS.values(), ids=BAD_PATHS.keys())
def test_an_unusable_model_path_is_a_422_naming_the_field(api: Api, path: str) -> None:
    answer = httpx.post(f"{api.url}/api/v1/model", headers=api.headers(api.scientist), json={"path": path})
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"] == "application/problem+json"
    assert list(answer.json()["errors"]) == ["path"]


def test_an_imported_model_is_registered_as_imported_whatever_its_manifest_claims(api: Api, tmp_path: Path) -> None:
    builder = ModelBuilder("claims-a-training", "1")
    builder.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    model = builder.save(tmp_path / "model", training_id="census-train")  # anyone can write this into a manifest
    answer = httpx.post(
        f"{api.url}/api/v1/model", headers=api.headers(api.scientist), json={"path": str(model)}, timeout=120
    )
    assert answer.status_code == 201, answer.text
    # A packaging packs a training's model only when the registry says that training registered it: an import
    # must not pass for the training's own model.
    assert answer.json()["source"] == "import"
    assert answer.json()["manifest"]["provenance"]["trainingId"] == "census-train"  # what it claims stays readable

"""``/api/v1/model``: a model path the OS cannot take is the caller's mistake, a 422 naming ``path``, never a 500."""

from __future__ import annotations

import httpx
import pytest

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

"""Era-a ``/batch`` answers one item per line, also for a model that answers one dict whatever it is given."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.serving.toy_models import save_era_a, save_toy
from tests.support.server import ServerProcess, serving


@pytest.fixture(scope="module")
def era_a_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(save_era_a(tmp_path_factory.mktemp("era-a") / "model")) as server:
        yield server


@pytest.mark.parametrize("lines", [2, 100])
def test_batch_of_a_one_dict_model_answers_per_line(
    era_a_server: ServerProcess, client: httpx.Client, lines: int
) -> None:
    url = f"{era_a_server.url}/api/model/era-a/1/batch"
    by_lines = client.post(
        url, content="\n".join(f"a={i}" for i in range(lines)), headers={"content-type": "text/plain"}
    )
    by_json = client.post(url, json=[{"a": i} for i in range(lines)])
    expected = [{"double": 2 * i} for i in range(lines)]
    assert by_lines.status_code == 200, by_lines.text
    assert by_lines.json() == expected
    assert by_json.json() == expected


def test_batch_of_a_row_model_still_answers_per_line(
    tmp_path_factory: pytest.TempPathFactory, client: httpx.Client
) -> None:
    with serving(save_toy(tmp_path_factory.mktemp("toy") / "model")) as server:
        answer = client.post(
            f"{server.url}/api/model/toy/1/batch", json=[{"a": 1, "b": 0.5, "s": "x"}, {"a": 2, "b": 1.0, "s": "y"}]
        )
    assert answer.json() == [{"total": 1.5, "label": "X"}, {"total": 3.0, "label": "Y"}]

"""OIP V2 through Triton's own HTTP client: JSON and binary tensor data, BYTES and numeric inputs and outputs."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.serving.toy_models import save_toy
from tests.support.server import ServerProcess, serving

httpclient = pytest.importorskip("tritonclient.http")


@pytest.fixture(scope="module")
def toy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    with serving(save_toy(tmp_path_factory.mktemp("toy") / "model")) as server:
        yield server


@pytest.fixture(scope="module")
def triton(toy_server: ServerProcess) -> Iterator[object]:
    client = httpclient.InferenceServerClient(url=toy_server.url.removeprefix("http://"))
    yield client
    client.close()


def inputs(binary: bool) -> list[object]:
    a = httpclient.InferInput("a", [3], "INT64")
    a.set_data_from_numpy(np.array([1, 2, 40], dtype=np.int64), binary_data=binary)
    b = httpclient.InferInput("b", [3], "FP64")
    b.set_data_from_numpy(np.array([0.5, 1.5, 2.0]), binary_data=binary)
    s = httpclient.InferInput("s", [3], "BYTES")
    s.set_data_from_numpy(np.array([b"x", "y\u00e9".encode(), b"zed"], dtype=object), binary_data=binary)
    return [a, b, s]


@pytest.mark.parametrize("binary_in", [False, True], ids=["json-in", "binary-in"])
@pytest.mark.parametrize("binary_out", [False, True], ids=["json-out", "binary-out"])
def test_triton_client_gets_the_same_answer_in_every_encoding(
    triton: object, binary_in: bool, binary_out: bool
) -> None:
    outputs = [httpclient.InferRequestedOutput(n, binary_data=binary_out) for n in ("total", "label")]
    result = triton.infer("toy", inputs(binary_in), outputs=outputs)  # type: ignore[attr-defined]
    assert result.as_numpy("total").tolist() == [1.5, 3.5, 42.0]
    labels = [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label").tolist()]
    assert labels == ["X", "Y\u00c9", "ZED"]
    sent_binary = result.get_output("total").get("parameters", {}).get("binary_data_size") is not None
    assert sent_binary == binary_out


def test_triton_client_default_asks_for_every_output_as_binary(triton: object) -> None:
    result = triton.infer("toy", inputs(True))  # type: ignore[attr-defined]
    assert result.get_output("total")["parameters"]["binary_data_size"] == 24
    assert result.as_numpy("total").tolist() == [1.5, 3.5, 42.0]


def test_a_requested_output_subset_is_all_that_comes_back(triton: object) -> None:
    result = triton.infer("toy", inputs(False), outputs=[httpclient.InferRequestedOutput("label", binary_data=False)])  # type: ignore[attr-defined]
    assert [o["name"] for o in result.get_response()["outputs"]] == ["label"]


def test_short_binary_data_is_a_400_naming_the_input(toy_server: ServerProcess) -> None:
    header = (
        b'{"inputs":[{"name":"a","shape":[2],"datatype":"INT64","parameters":{"binary_data_size":16}},'
        b'{"name":"b","shape":[1],"datatype":"FP64","data":[1.0]},{"name":"s","shape":[1],"datatype":"BYTES","data":["x"]}]}'
    )
    answer = httpx.post(
        f"{toy_server.url}/v2/models/toy/infer",
        content=header + b"\x01" * 8,
        headers={"content-type": "application/octet-stream", "inference-header-content-length": str(len(header))},
    )
    assert answer.status_code == 400
    assert "input 'a': binary_data_size 16 does not fit the 8 bytes left" in answer.json()["error"]

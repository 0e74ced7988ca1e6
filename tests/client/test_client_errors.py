"""The client turns an API's failed answer into the core error of its status, and so the CLI's exit code."""

from __future__ import annotations

import httpx
import pytest

from legion.client import LegionClient
from legion.core.errors import BY_STATUS, BadGatewayError, GatewayTimeoutError, LegionError


def answering(status: int, body: dict[str, object]) -> LegionClient:
    """A client whose every request the API answers with ``status`` and ``body`` (problem+json)."""

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, json=body, headers={"content-type": "application/problem+json"})

    return LegionClient("http://api.test", "token", transport=httpx.MockTransport(handler))


@pytest.mark.parametrize(("status", "error", "exit_code"), [(502, BadGatewayError, 7), (504, GatewayTimeoutError, 7)])
def test_a_gateway_error_from_the_api_is_the_core_error_with_its_exit_code(
    status: int, error: type[LegionError], exit_code: int
) -> None:
    body = {"title": "x", "status": status, "detail": "the replica broke off"}
    with answering(status, body) as client, pytest.raises(error) as raised:
        client.get("/model/deployment", "census")
    assert type(raised.value) is error
    assert (raised.value.status, raised.value.exit_code) == (status, exit_code)
    assert raised.value.detail == "the replica broke off"


def test_every_status_of_the_error_tree_comes_back_as_its_error() -> None:
    for status, error in BY_STATUS.items():
        body = {"detail": "no", "errors": {"spec.image": "missing"}}
        with answering(status, body) as client, pytest.raises(LegionError) as raised:
            client.list("/model/deployment")
        assert type(raised.value) is error and raised.value.status == status
        assert raised.value.fields == {"spec.image": "missing"}


def test_a_status_the_tree_does_not_name_is_a_legion_error() -> None:
    with answering(418, {}) as client, pytest.raises(LegionError) as raised:
        client.delete("/model/deployment", "census")
    assert type(raised.value) is LegionError and raised.value.exit_code == 1
    assert raised.value.detail == "the server answered 418"

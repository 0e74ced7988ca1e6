"""Property-based: whatever JSON a client sends to the invoke routes, the answer is never a 5xx."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.server import ServerProcess

COLUMNS = ["age", "workclass", "fnlwgt", "education", "education_num", "marital_status", "occupation",
           "relationship", "race", "sex", "capital_gain", "capital_loss", "hours_per_week", "native_country"]  # fmt: skip

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=20),
)  # fmt: skip
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
column_names = st.one_of(st.sampled_from(COLUMNS), st.text(max_size=10))
rows_like = st.fixed_dictionaries(
    {"columns": st.one_of(st.just(COLUMNS), st.lists(column_names, max_size=16), json_values),
     "data": st.one_of(st.lists(st.lists(scalars, min_size=14, max_size=14), max_size=3),
                       st.lists(st.lists(scalars, max_size=15), max_size=3), json_values)}
)  # fmt: skip
bodies = st.one_of(rows_like, json_values)
routes = st.sampled_from(
    ["/api/model/invoke", "/api/model/census-income/1.0/invoke", "/api/model/census-income/1.0/batch",
     "/v2/models/census-income/infer", "/invocations"]
)  # fmt: skip


@pytest.fixture(scope="module")
def session(census_server: ServerProcess) -> Iterator[tuple[httpx.Client, str]]:
    with httpx.Client(timeout=30) as client:
        yield client, census_server.url


def v2_body(body: Any) -> Any:
    """Also aim at the V2 shape: tensors built from the generated values."""
    if (
        isinstance(body, dict)
        and isinstance(body.get("data"), list)
        and body["data"]
        and isinstance(body["data"][0], list)
    ):
        return {"inputs": [{"name": n, "shape": [1], "datatype": "BYTES", "data": [v]}
                           for n, v in zip(COLUMNS, body["data"][0], strict=False)]}  # fmt: skip
    return body


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(route=routes, body=bodies)
def test_invoke_routes_never_answer_5xx(session: tuple[httpx.Client, str], route: str, body: Any) -> None:
    client, base = session
    payload = v2_body(body) if route.startswith("/v2/") else body
    if route == "/invocations" and isinstance(body, dict) and "columns" in body:
        payload = {"dataframe_split": body}
    response = client.post(f"{base}{route}", json=payload)
    assert response.status_code < 500, response.text
    if response.status_code >= 400:
        error = response.json()
        assert error.get("error") or error.get("message")


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    params=st.dictionaries(st.one_of(st.sampled_from(COLUMNS), st.text(max_size=8)), st.text(max_size=12), max_size=16)
)
def test_era_a_query_strings_never_answer_5xx(session: tuple[httpx.Client, str], params: dict[str, str]) -> None:
    client, base = session
    response = client.get(f"{base}/api/model/census-income/1.0/invoke", params=params)
    assert response.status_code < 500, response.text

"""Servers for the model server tests: real ``legion serve`` processes on 127.0.0.1, one per model per session."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.support.server import ServerProcess, serving

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def census_server(census_model_dir: Path) -> Iterator[ServerProcess]:
    with serving(census_model_dir) as server:
        yield server


@pytest.fixture(scope="session")
def digits_server(digits_model_dir: Path) -> Iterator[ServerProcess]:
    with serving(digits_model_dir) as server:
        yield server


@pytest.fixture(scope="session")
def summation_server(summation_model_dir: Path) -> Iterator[ServerProcess]:
    with serving(summation_model_dir) as server:
        yield server


@pytest.fixture(scope="session")
def census_request() -> dict[str, Any]:
    """The example's own request body: one known row, era-b shape."""
    body: dict[str, Any] = json.loads((ROOT / "examples/census_income/request.json").read_text())
    return body


@pytest.fixture(scope="session")
def census_rows() -> tuple[list[str], list[list[Any]]]:
    """1,000 real rows of the census data, as columns and rows for a request."""
    from examples.census_income import train

    features, _ = train.load_data()
    sample = features.head(1000)
    return [str(c) for c in sample.columns], sample.astype(object).to_numpy().tolist()


@pytest.fixture
def client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=30) as session:
        yield session

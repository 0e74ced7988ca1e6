"""``legion.core.quantities``: Kubernetes quantities read, converted to bytes and millicores, and written back."""

from __future__ import annotations

from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from legion.core.quantities import (
    SUFFIXES,
    format_bytes,
    format_millicores,
    parse_quantity,
    to_bytes,
    to_millicores,
)


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("256Mi", 256 * 2**20),
        ("128Mi", 128 * 2**20),
        ("1G", 10**9),
        ("512M", 512 * 10**6),
        ("1Gi", 2**30),
        ("64Ki", 64 * 1024),
        ("1.5Gi", 3 * 2**29),
        ("1000", 1000),
        ("1e3", 1000),
        ("0.5", 1),  # half a byte is a byte: rounded up, as Kubernetes does
        ("100m", 1),
    ],
)
def test_memory_quantities_in_bytes(text: str, size: int) -> None:
    assert to_bytes(text) == size


@pytest.mark.parametrize(
    ("text", "millicores"),
    [("256m", 256), ("128m", 128), ("0.5", 500), ("1", 1000), ("2", 2000), ("1.5", 1500), ("0.1", 100),
     ("0.0005", 1), ("100", 100_000), ("1k", 1_000_000)],
)  # fmt: skip
def test_cpu_quantities_in_millicores(text: str, millicores: int) -> None:
    assert to_millicores(text) == millicores


@pytest.mark.parametrize(
    ("size", "text"),
    [(256 * 2**20, "256Mi"), (2**30, "1Gi"), (3 * 2**29, "1536Mi"), (1000, "1000"), (1024, "1Ki"), (0, "0"),
     (2**60, "1Ei"), (10**9, "1000000000")],
)  # fmt: skip
def test_sizes_are_written_with_the_largest_exact_binary_suffix(size: int, text: str) -> None:
    assert format_bytes(size) == text


@pytest.mark.parametrize(("millicores", "text"), [(256, "256m"), (1000, "1"), (2500, "2500m"), (0, "0")])
def test_cpu_amounts_are_written_as_kubernetes_does(millicores: int, text: str) -> None:
    assert format_millicores(millicores) == text


@pytest.mark.parametrize("bad", [-1])
def test_negative_amounts_cannot_be_written(bad: int) -> None:
    with pytest.raises(ValueError, match="not"):
        format_bytes(bad)
    with pytest.raises(ValueError, match="not"):
        format_millicores(bad)


@given(st.integers(min_value=0, max_value=2**70))
def test_sizes_round_trip(size: int) -> None:
    assert to_bytes(format_bytes(size)) == size
    assert parse_quantity(format_bytes(size)) == size


@given(st.integers(min_value=0, max_value=10**9))
def test_cpu_amounts_round_trip(millicores: int) -> None:
    assert to_millicores(format_millicores(millicores)) == millicores


@given(
    st.integers(min_value=0, max_value=10**12),
    st.integers(min_value=0, max_value=3),
    st.sampled_from(sorted(SUFFIXES)),
)
def test_any_written_quantity_reads_as_its_value(whole: int, decimals: int, suffix: str) -> None:
    number = Decimal(whole).scaleb(-decimals)
    text = f"{number:f}{suffix}"
    assert parse_quantity(text) == number * SUFFIXES[suffix]
    assert to_bytes(text) >= parse_quantity(text) > to_bytes(text) - 1

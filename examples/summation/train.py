"""Summation: Legion's test model, small enough to reason about every answer.

Run it as ``python examples/summation/train.py [--output DIR]``. It has two endpoints and one property:

- ``default`` (untyped): ``{"a": 1, "b": 2}`` -> ``{"result": 3}``; the values may be numbers (JSON) or
  text (a query string such as ``?a=1&b=2``);
- ``sum_and_pow`` (typed, ``a`` and ``b`` are int64): one row per input row with ``sum`` = a + b and
  ``pow`` = a ** b;
- ``multiplier`` (initially 1): both endpoints multiply their answers by it, so changing the property while
  the model is served visibly changes the answers.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

import legion.model

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "build" / "model"
MULTIPLIER = "multiplier"


def add(params: Mapping[str, Any]) -> dict[str, int]:
    """The ``default`` endpoint: ``{"result": (a + b) * multiplier}``."""
    total = int(params["a"]) + int(params["b"])
    return {"result": total * legion.model.get_property(MULTIPLIER)}


def sum_and_pow(df: pd.DataFrame) -> pd.DataFrame:
    """The ``sum_and_pow`` endpoint: per row, ``(a + b) * multiplier`` and ``a ** b * multiplier``."""
    multiplier = legion.model.get_property(MULTIPLIER)
    return pd.DataFrame({"sum": (df["a"] + df["b"]) * multiplier, "pow": (df["a"] ** df["b"]) * multiplier})


def export(output: Path) -> Path:
    """Save the summation model with its two endpoints and the ``multiplier`` property."""
    legion.model.init("summation", "1.0")
    legion.model.define_property(MULTIPLIER, 1)
    legion.model.export_untyped(add)
    legion.model.export(sum_and_pow, {"a": "int64", "b": "int64"}, endpoint="sum_and_pow")
    return legion.model.save(output)


def main(argv: list[str] | None = None) -> Path:
    """Save the model; returns where it was saved."""
    parser = argparse.ArgumentParser(description="Save Legion's summation test model.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="model directory or .zip to write")
    args = parser.parse_args(argv)
    saved = export(args.output)
    print(f"saved {saved}")
    return saved


if __name__ == "__main__":
    main()

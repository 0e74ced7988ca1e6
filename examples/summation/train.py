"""Summation: Legion's test model, small enough to reason about every answer.

Run it as ``python examples/summation/train.py [--output DIR] [--version V]`` (the version defaults to
``$LEGION_MODEL_VERSION``, the ``model.version`` of a ModelTraining that runs it, else 1.0). It has two endpoints
and one property:

- ``default`` (untyped): ``{"a": 1, "b": 2}`` -> ``{"result": 3}``; the values may be numbers (JSON) or
  text (a query string such as ``?a=1&b=2``);
- ``sum_and_pow`` (typed, ``a`` and ``b`` are int64): one row per input row with ``sum`` = a + b and
  ``pow`` = a ** b;
- ``multiplier`` (initially 1): both endpoints multiply their answers by it, so changing the property while
  the model is served visibly changes the answers.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd

import legion.model

HERE = Path(__file__).resolve().parent
DEFAULT_OUTPUT = HERE / "build" / "model"
DEFAULT_VERSION = "1.0"
VERSION_HELP = "model version to save (default: $LEGION_MODEL_VERSION, a ModelTraining's model.version; else 1.0)"
MULTIPLIER = "multiplier"


def add(params: Mapping[str, Any]) -> dict[str, int]:
    """The ``default`` endpoint: ``{"result": (a + b) * multiplier}``."""
    total = int(params["a"]) + int(params["b"])
    return {"result": total * legion.model.get_property(MULTIPLIER)}


def sum_and_pow(df: pd.DataFrame) -> pd.DataFrame:
    """The ``sum_and_pow`` endpoint: per row, ``(a + b) * multiplier`` and ``a ** b * multiplier``."""
    multiplier = legion.model.get_property(MULTIPLIER)
    return pd.DataFrame({"sum": (df["a"] + df["b"]) * multiplier, "pow": (df["a"] ** df["b"]) * multiplier})


def export(output: Path, version: str = DEFAULT_VERSION) -> Path:
    """Save the summation model with its two endpoints and the ``multiplier`` property."""
    legion.model.init("summation", version)
    legion.model.define_property(MULTIPLIER, 1)
    legion.model.export_untyped(add)
    legion.model.export(sum_and_pow, {"a": "int64", "b": "int64"}, endpoint="sum_and_pow")
    return legion.model.save(output)


def main(argv: list[str] | None = None) -> Path:
    """Save the model; returns where it was saved."""
    parser = argparse.ArgumentParser(description="Save Legion's summation test model.")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="model directory or .zip to write")
    parser.add_argument("--version", default=None, help=VERSION_HELP)
    args = parser.parse_args(argv)
    saved = export(args.output, args.version or os.environ.get("LEGION_MODEL_VERSION") or DEFAULT_VERSION)
    print(f"saved {saved}")
    return saved


if __name__ == "__main__":
    main()

"""Small models built by the server tests for behaviours the examples do not have."""

from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from legion.model import ModelBuilder

SAMPLE = pd.DataFrame({"a": [1, 2], "b": [0.5, 1.5], "s": ["x", "y"]})


def _fail_on_13(frame: pd.DataFrame) -> pd.DataFrame:
    if (frame["a"] == 13).any():
        raise ValueError("thirteen is unlucky")
    return pd.DataFrame({"total": frame["a"] + frame["b"], "label": frame["s"].str.upper()})


def save_toy(path: Path) -> Path:
    """Columns a:int64, b:float64, s:string; raises for a == 13 (a model error, not the caller's)."""
    builder = ModelBuilder("toy", "1")
    builder.export_df(_fail_on_13, SAMPLE)
    return builder.save(path)


class GatedModel:
    """Waits for files the test creates: ``loaded`` before load ends, ``release`` before a==99 predicts."""

    def __init__(self, gate_dir: Path) -> None:
        self.gate_dir = gate_dir

    def _wait_for(self, name: str) -> None:
        deadline = time.monotonic() + 60
        while not (self.gate_dir / name).exists():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} never appeared")
            time.sleep(0.01)

    def load(self) -> None:
        self._wait_for("loaded")

    def predict(self, frame: pd.DataFrame) -> pd.DataFrame:
        if (frame["a"] == 99).any():
            (self.gate_dir / "predicting").touch()
            self._wait_for("release")
        return pd.DataFrame({"double": frame["a"] * 2})


def save_gated(path: Path, gate_dir: Path) -> Path:
    builder = ModelBuilder("gated", "1")
    builder.export_class(GatedModel(gate_dir), column_types={"a": "int64"})
    return builder.save(path)


def _era_a_answer(frame: pd.DataFrame) -> dict[str, int]:
    """Legion's era-a style: read the first row, answer one dict (not one answer per row)."""
    return {"double": int(frame["a"].iloc[0]) * 2}


def save_era_a(path: Path) -> Path:
    """Column a:int64; answers ``{"double": 2a}`` for the first row of whatever it is given."""
    builder = ModelBuilder("era-a", "1")
    builder.export_df(_era_a_answer, pd.DataFrame({"a": [1]}))
    return builder.save(path)

"""A model that pins another version of a package than this environment has: six, a one-file pure-Python package.

The model answers the version of six it runs with (``importlib.metadata``), and its manifest pins six at
``PINNED_SIX`` as if it had been trained elsewhere; this environment has ``six`` at another minor version. So a
prediction says which environment served it: the model's own virtualenv answers ``PINNED_SIX``, this one its own.
``TRAIN`` is the training script (run as a subprocess here, and by the API's training in its tests).
"""

from __future__ import annotations

import importlib.metadata
import subprocess
import sys
from pathlib import Path
from typing import Final

PINNED_SIX: Final = "1.16.0"
"""Eleven kilobytes from the package index (or uv's cache); another minor than the environment's six."""
REQUEST: Final = {"columns": ["a"], "data": [[1]]}

TRAIN: Final = f'''
"""Save the six-version model into --output, pinning six {PINNED_SIX}."""
import os
import sys
from pathlib import Path

import pandas as pd
import yaml

import legion.model


def version_of_six(frame):
    import importlib.metadata

    return pd.DataFrame({{"six": [importlib.metadata.version("six")] * len(frame)}})


output = Path(sys.argv[sys.argv.index("--output") + 1])
legion.model.init(os.environ.get("LEGION_MODEL_NAME", "six-version"), os.environ.get("LEGION_MODEL_VERSION", "1"))
legion.model.export_df(version_of_six, pd.DataFrame({{"a": [1]}}))
legion.model.save(output)
manifest = yaml.safe_load((output / "legion.model.yaml").read_text())
manifest["requirements"] = {{"six": "{PINNED_SIX}"}}  # as trained where six {PINNED_SIX} was installed
(output / "legion.model.yaml").write_text(yaml.safe_dump(manifest, sort_keys=False))
print("saved", flush=True)
'''


def installed_six() -> str:
    return importlib.metadata.version("six")


def write_training(directory: Path) -> Path:
    """``directory/train.py``, the training script; returns the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "train.py").write_text(TRAIN)
    return directory


def train(output: Path) -> Path:
    """Run the training script here; the saved model directory."""
    code = write_training(output.parent / "code")
    subprocess.run([sys.executable, "train.py", "--output", str(output)], cwd=code, check=True, timeout=120)
    return output

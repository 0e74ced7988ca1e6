"""Training metrics sent with ``legion.model.send_metric`` while a trainer runs the script.

When Legion's trainer runs a training, it sets ``LEGION_METRICS_FILE``; each metric is appended to it as a JSON
line so the trainer can collect it even if the script never saves a model. Outside a trainer nothing is written.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from legion.core.settings import LegionSettings


class TrainingSettings(LegionSettings):
    """What a trainer tells the training script through the environment."""

    metrics_file: Path | None = None
    """JSON-lines file that receives every ``send_metric`` call."""
    training_id: str | None = None
    """Id of the ModelTraining running this script; recorded in the manifest's provenance."""
    git_commit: str | None = None
    """Commit the training code was checked out at; recorded in the manifest's provenance."""


def send_metric(name: str, value: float) -> None:
    target = TrainingSettings().metrics_file
    if target is None:
        return
    line = json.dumps({"name": name, "value": float(value), "time": time.time()})
    with target.open("a", encoding="utf-8") as out:
        out.write(line + "\n")

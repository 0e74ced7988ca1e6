"""Run a Python script the way a user does: a fresh interpreter, no PYTHONPATH from the test run."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path


def run_python(*args: str, cwd: Path, env: Mapping[str, str] | None = None) -> str:
    """The script's standard output; ``env`` adds variables to the test run's environment."""
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"} | dict(env or {})
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout

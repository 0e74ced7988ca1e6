"""Run a Python script the way a user does: a fresh interpreter, no PYTHONPATH from the test run."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def run_python(*args: str, cwd: Path) -> str:
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run(
        [sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout

"""``legion up`` as a child process, as a user runs it in a terminal: ``line(pattern)`` waits for a line of its
output, ``interrupt()`` is a terminal's Ctrl-C (SIGINT to its whole process group)."""

from __future__ import annotations

import os
import queue
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from legion.model import ModelBuilder

ROOT = Path(__file__).resolve().parents[2]
LINE_DEADLINE_S = 180.0
STOP_DEADLINE_S = 120.0


class Up:
    """``legion up ARGS`` in a process group of its own (the terminal's foreground group, in a test)."""

    def __init__(self, args: Sequence[str], env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "legion", "up", *args],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.seen: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._reader = threading.Thread(target=self._pump, daemon=True)
        self._reader.start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line)

    def line(self, pattern: str, deadline_s: float = LINE_DEADLINE_S) -> re.Match[str]:
        """The first line from now on that matches ``pattern``."""
        end = time.monotonic() + deadline_s
        while time.monotonic() < end:
            try:
                line = self._lines.get(timeout=1.0)
            except queue.Empty:
                assert self.process.poll() is None, "legion up exited:\n" + self.output()
                continue
            self.seen.append(line)
            found = re.search(pattern, line)
            if found:
                return found
        raise AssertionError(f"legion up printed no line matching {pattern!r}:\n" + self.output())

    def output(self) -> str:
        """Every line read so far."""
        while True:
            try:
                self.seen.append(self._lines.get_nowait())
            except queue.Empty:
                return "".join(self.seen)

    def interrupt(self) -> int:
        """Ctrl-C in its terminal; the exit status."""
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
        return self.wait()

    def stop(self) -> int:
        """SIGTERM to ``legion up`` alone; the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.wait()

    def wait(self) -> int:
        """Its exit status once it ended, with all its output read."""
        code = self.process.wait(STOP_DEADLINE_S)
        self._reader.join(5)
        self.output()
        if self.process.stdout is not None and not self._reader.is_alive():
            self.process.stdout.close()
        return code


def doubler_deployment(directory: Path) -> Path:
    """A manifest in ``directory``: a ModelDeployment ``doubler`` (``a`` times 2) with 2 replicas, its model saved
    beside it."""
    builder = ModelBuilder("doubler", "1")
    builder.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    model = builder.save(directory / "model")
    path = directory / "deployment.yaml"
    path.write_text(f"kind: ModelDeployment\nid: doubler\nspec: {{image: {model}, minReplicas: 2}}\n")
    return path

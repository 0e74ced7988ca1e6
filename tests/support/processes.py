"""Checks on processes the tests started (by pid): gone, gone within a deadline, and this process's children."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path


def gone(pid: int) -> bool:
    return not Path(f"/proc/{pid}").exists()


async def eventually_gone(pid: int, deadline_s: float = 10.0) -> bool:
    """For a process that is not our child: its new parent (init) reaps it a moment after it exits."""
    end = time.monotonic() + deadline_s
    while not gone(pid):
        if time.monotonic() > end:
            return False
        await asyncio.sleep(0.05)
    return True


def children() -> set[int]:
    """Pids of the processes this test process started and has not reaped (zombies included)."""
    me = str(os.getpid())
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if fields[1] == me:
            found.add(int(entry.name))
    return found


def no_children_left_since(before: set[int]) -> None:
    """Fail when this process has children that it had not at ``before`` (``children()`` then); they are killed
    first, by pid, so that one failing test does not leak into the next."""
    left = children() - before
    for pid in left:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
    assert not left, f"processes left behind: {left}"

"""Checks on processes the tests started (by pid): gone, or gone within a deadline."""

from __future__ import annotations

import asyncio
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

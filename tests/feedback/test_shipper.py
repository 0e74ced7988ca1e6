"""The shipper process gives way to the serving processes: its priority, its session, its share of a busy CPU."""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from pathlib import Path

import pytest

from legion.feedback.log import PredictionLog
from legion.feedback.shipper import NICENESS
from legion.feedback.sinks import LocalSink
from tests.support.server import wait_until

AUTOGROUPS = Path("/proc/sys/kernel/sched_autogroup_enabled")
BUSY = "{lower}\nprint('ready', flush=True)\nwhile True:\n    pass\n"


def autogroups_on() -> bool:
    try:
        return AUTOGROUPS.read_text().strip() == "1"
    except OSError:
        return False


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_the_shipper_process_runs_below_the_serving_process(tmp_path: Path) -> None:
    log = PredictionLog.open(tmp_path / "buffer", functools.partial(LocalSink, tmp_path / "sink"))
    try:
        pid = log.shipper.pid
        assert pid is not None
        expected = min(os.getpriority(os.PRIO_PROCESS, 0) + NICENESS, 19)
        wait_until(lambda: os.getpriority(os.PRIO_PROCESS, pid) == expected, 30, "the shipper to lower its priority")
        wait_until(lambda: os.getsid(pid) == pid, 30, "the shipper to lead a session of its own")
        if autogroups_on():
            group = Path(f"/proc/{pid}/autogroup")
            wait_until(lambda: group.read_text().split()[-1] == str(NICENESS), 30, "its session to be lowered")
    finally:
        log.close()


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads CPU time from Linux /proc")
def test_a_shipper_takes_little_of_a_cpu_that_a_model_server_in_its_own_session_wants() -> None:
    """A busy loop lowered as a shipper lowers itself, and one in a session of its own (as ``legion up`` starts
    each model server), on one CPU: the second gets most of it (with ``nice`` alone, under autogroups: half)."""
    cpu = min(os.sched_getaffinity(0))

    started: list[subprocess.Popen[str]] = []

    def busy(lower: str, **options: bool) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [sys.executable, "-c", BUSY.format(lower=lower)], stdout=subprocess.PIPE, text=True,
            preexec_fn=lambda: os.sched_setaffinity(0, {cpu}), **options,  # noqa: PLW1509  # affinity only
        )  # fmt: skip
        started.append(process)
        assert process.stdout is not None and process.stdout.readline() == "ready\n"
        return process

    try:
        model = busy("", start_new_session=True)
        shipper = busy("from legion.feedback.shipper import run_below_serving; run_below_serving()")
        start = cpu_s(model.pid), cpu_s(shipper.pid)
        wait_until(lambda: cpu_s(model.pid) + cpu_s(shipper.pid) - sum(start) >= 1.5, 60, "1.5 s of CPU between them")
        model_s, shipper_s = cpu_s(model.pid) - start[0], cpu_s(shipper.pid) - start[1]
    finally:
        for process in started:
            process.kill()
            process.communicate()
    assert model_s / (model_s + shipper_s) >= 0.75, (model_s, shipper_s)

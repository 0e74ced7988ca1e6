"""``LocalJobs`` with real training processes: success, failures, logs, cancelling, adoption, the census example.

Trainings are small scripts written into ``tmp_path``; one that has to wait does so on a file the test creates
(with its own deadline, so nothing hangs). An autouse fixture deletes every training the test left and fails the
test if one of its processes is still there.
"""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import legion.model as lm
from legion.api.runtime.base import PermanentRuntimeError
from legion.api.runtime.jobs import NO_MODEL_REASON, JobObservation, LocalJobs
from legion.core.errors import NotFoundError
from legion.core.resources import ModelTrainingSpec
from tests.support.processes import children, eventually_gone, gone, no_children_left_since

pytestmark = pytest.mark.anyio

DEADLINE_S = 60.0
ROOT = Path(__file__).resolve().parents[3]

TRAIN = """
import json, os, sys
import pandas as pd
import legion.model

print("args", json.dumps(sys.argv[1:]), flush=True)
seen = {k: v for k, v in os.environ.items() if k.startswith(("LEGION_", "CUSTOM_"))}
print("env", json.dumps(seen), flush=True)
legion.model.init(os.environ["LEGION_MODEL_NAME"], os.environ["LEGION_MODEL_VERSION"])
legion.model.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
legion.model.send_metric("accuracy", 0.5)
legion.model.send_metric("loss", 0.25)
legion.model.send_metric("accuracy", 0.9)
legion.model.save(os.environ["LEGION_OUTPUT_DIR"])
"""

BOOM = """
import sys
print("working", flush=True)
print("boom", file=sys.stderr, flush=True)
sys.exit(3)
"""

NO_MODEL = """
print("trained, but forgot to save")
"""

# Dies of an exception raised while handling another, 40 frames deep (two functions in turn, so that Python does
# not fold them into "previous line repeated"): a traceback longer than the log's tail.
RAISES = """
print("reading the data", flush=True)
def read(depth):
    if depth == 0:
        try:
            {}["age"]
        except KeyError as exc:
            raise ValueError("no column 'age'") from exc
    return parse(depth - 1)
def parse(depth):
    return read(depth)
read(20)
"""

# Waits for the file named by its first argument (at most 60 s), then prints, sends a metric and exits with
# the code in its second argument. ``ignore-term`` as the third makes it deaf to SIGTERM.
WAIT_FOR_FILE = """
import json, os, signal, sys, time
if sys.argv[3:] == ["ignore-term"]:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
print("line 1", flush=True)
deadline = time.monotonic() + 60
while not os.path.exists(sys.argv[1]) and time.monotonic() < deadline:
    time.sleep(0.05)
print("line 2", flush=True)
with open(os.environ["LEGION_METRICS_FILE"], "a") as metrics:
    metrics.write(json.dumps({"name": "steps", "value": 7}) + "\\n")
print("no newline at the end", end="", flush=True)
sys.exit(int(sys.argv[2]))
"""

START_AND_EXIT = """
import asyncio, json, sys
from pathlib import Path
from legion.api.runtime.jobs import LocalJobs
from legion.core.resources import ModelTrainingSpec

async def main() -> None:
    jobs = LocalJobs(Path(sys.argv[1]))
    for training_id, spec in json.loads(sys.argv[3]).items():
        await jobs.start_training(training_id, ModelTrainingSpec.model_validate(spec), source_dir=Path(sys.argv[2]))

asyncio.run(main())
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(autouse=True)
def work_dir(tmp_path: Path) -> Iterator[Path]:
    """The jobs' work directory; afterwards every training in it is deleted and no child may be left."""
    before = children()
    work = tmp_path / "work"
    yield work
    jobs = LocalJobs(work, stop_timeout_s=5)
    trainings = work / "trainings"
    for directory in sorted(trainings.iterdir()) if trainings.is_dir() else ():
        asyncio.run(jobs.delete(directory.name))
    no_children_left_since(before)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """The training code: one script per case."""
    directory = tmp_path / "src"
    directory.mkdir()
    scripts = {
        "train.py": TRAIN,
        "boom.py": BOOM,
        "no_model.py": NO_MODEL,
        "wait.py": WAIT_FOR_FILE,
        "raises.py": RAISES,
    }
    for name, text in scripts.items():
        (directory / name).write_text(text)
    return directory


def training(entrypoint: str, **fields: object) -> ModelTrainingSpec:
    body: dict[str, object] = {
        "model": {"name": "double", "version": "1.2"},
        "toolchain": "python",
        "localPath": "src",
        "entrypoint": entrypoint,
        **fields,
    }
    return ModelTrainingSpec.model_validate(body)


async def ended(jobs: LocalJobs, training_id: str) -> JobObservation:
    """Observe until the training is no longer running."""
    end = time.monotonic() + DEADLINE_S
    while True:
        observation = await jobs.observe(training_id)
        assert observation is not None
        if observation.state != "running":
            return observation
        if time.monotonic() > end:
            raise AssertionError(f"training {training_id} still runs after {DEADLINE_S} s")
        await asyncio.sleep(0.05)


async def log_contains(jobs: LocalJobs, training_id: str, text: str) -> None:
    end = time.monotonic() + DEADLINE_S
    while text not in jobs.log_path(training_id).read_text():
        if time.monotonic() > end:
            raise AssertionError(f"{text!r} did not appear in the log of {training_id}")
        await asyncio.sleep(0.05)


def printed(jobs: LocalJobs, training_id: str, label: str) -> object:
    """What the training printed as ``<label> <json>``."""
    for line in jobs.log_path(training_id).read_text().splitlines():
        if line.startswith(f"{label} "):
            return json.loads(line.removeprefix(f"{label} "))
    raise AssertionError(f"no {label!r} line in the log")


async def test_a_training_saves_a_model_with_its_metrics_hyper_parameters_and_environment(
    work_dir: Path, source: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LEGION_API_SECRET", "not for trainings")
    jobs = LocalJobs(work_dir)
    spec = training(
        "train.py",
        args=["--epochs", "2", "--into={output}"],
        hyperParameters={"alpha": "0.5", "max-depth": "3"},
        envs=[{"name": "CUSTOM_FLAG", "value": "on"}],
    )
    await jobs.start_training("double-1", spec, source_dir=source, git_commit="abc123")
    first = await jobs.observe("double-1")
    assert first is not None
    await jobs.start_training("double-1", spec, source_dir=source)  # started already: nothing happens

    observation = await ended(jobs, "double-1")
    assert observation.reason is None, observation.reason
    assert (observation.state, observation.exit_code) == ("succeeded", 0)
    assert observation.pid == first.pid
    assert observation.metrics == {"accuracy": 0.9, "loss": 0.25}
    directory = work_dir / "trainings" / "double-1"
    output = directory / "output"
    assert observation.model_dir == output

    model = lm.load_model(output)
    assert (model.name, model.version) == ("double", "1.2")
    assert model.manifest.provenance.training_id == "double-1"
    assert model.manifest.provenance.git_commit == "abc123"
    hyper_parameters = ["--alpha", "0.5", "--max-depth", "3"]
    assert printed(jobs, "double-1", "args") == ["--epochs", "2", f"--into={output}", *hyper_parameters]
    assert printed(jobs, "double-1", "env") == {
        "CUSTOM_FLAG": "on",
        "LEGION_HP_ALPHA": "0.5",
        "LEGION_HP_MAX_DEPTH": "3",
        "LEGION_TRAINING_ID": "double-1",
        "LEGION_GIT_COMMIT": "abc123",
        "LEGION_METRICS_FILE": str(directory / "metrics.jsonl"),
        "LEGION_OUTPUT_DIR": str(output),
        "LEGION_MODEL_NAME": "double",
        "LEGION_MODEL_VERSION": "1.2",
    }
    state = json.loads((directory / "state.json").read_text())
    assert state["pid"] == first.pid
    assert state["command"][1:3] == ["train.py", "--epochs"]
    assert (directory / "exit_code").read_text() == "0"
    assert jobs.log_path("double-1") == directory / "job.log"


async def test_a_failing_training_reports_its_exit_code_and_log(work_dir: Path, source: Path) -> None:
    jobs = LocalJobs(work_dir)
    await jobs.start_training("boom", training("boom.py"), source_dir=source)
    observation = await ended(jobs, "boom")
    assert (observation.state, observation.exit_code, observation.model_dir) == ("failed", 3, None)
    assert observation.reason is not None
    assert observation.reason.startswith("exit code 3")
    assert "working\nboom" in observation.reason


async def test_a_training_that_raised_names_its_exception_before_the_log(work_dir: Path, source: Path) -> None:
    jobs = LocalJobs(work_dir)
    await jobs.start_training("raises", training("raises.py"), source_dir=source)
    observation = await ended(jobs, "raises")
    assert (observation.state, observation.exit_code) == ("failed", 1)
    assert observation.cause == "exit code 1: ValueError: no column 'age'"  # not the KeyError it was raised from
    assert observation.reason is not None
    assert observation.reason.startswith("exit code 1: ValueError: no column 'age'; its log ends:\n")
    assert "Traceback (most recent call last):" not in observation.reason  # 20 lines are the deepest frames


async def test_a_plain_failure_gives_its_exit_code_as_the_cause(work_dir: Path, source: Path) -> None:
    jobs = LocalJobs(work_dir)
    await jobs.start_training("boom", training("boom.py"), source_dir=source)
    observation = await ended(jobs, "boom")
    assert observation.cause == "exit code 3"


async def test_a_training_that_saves_no_model_fails(work_dir: Path, source: Path) -> None:
    jobs = LocalJobs(work_dir)
    await jobs.start_training("forgetful", training("no_model.py"), source_dir=source)
    observation = await ended(jobs, "forgetful")
    assert (observation.state, observation.exit_code, observation.model_dir) == ("failed", 0, None)
    assert observation.reason is not None
    assert observation.reason.startswith(NO_MODEL_REASON)
    assert "forgot to save" in observation.reason


async def test_work_dir_and_missing_entrypoint_are_refused_before_anything_starts(work_dir: Path, source: Path) -> None:
    jobs = LocalJobs(work_dir)
    with pytest.raises(PermanentRuntimeError, match=r"'missing\.py' is not a file"):
        await jobs.start_training("missing", training("missing.py"), source_dir=source)
    with pytest.raises(PermanentRuntimeError, match="does not exist"):
        await jobs.start_training("missing", training("train.py", workDir="nowhere"), source_dir=source)
    assert await jobs.observe("missing") is None
    assert await jobs.cancel("missing") is True
    with pytest.raises(NotFoundError):
        [line async for line in jobs.follow_log("missing", follow=False)]


async def test_follow_log_yields_lines_as_they_are_written_and_ends_with_the_job(
    work_dir: Path, source: Path, tmp_path: Path
) -> None:
    jobs = LocalJobs(work_dir)
    go = tmp_path / "go"
    spec = training("wait.py", args=[str(go), "0"])
    await jobs.start_training("follow", spec, source_dir=source)
    lines = jobs.follow_log("follow", follow=True)
    async with asyncio.timeout(DEADLINE_S):
        assert await anext(lines) == "line 1"
        observation = await jobs.observe("follow")
        assert observation is not None
        assert observation.state == "running"
        assert [line async for line in jobs.follow_log("follow", follow=False)] == ["line 1"]
        go.touch()
        assert [line async for line in lines] == ["line 2", "no newline at the end"]
    observation = await ended(jobs, "follow")
    assert observation.reason is not None
    assert observation.reason.startswith(NO_MODEL_REASON)
    assert observation.metrics == {"steps": 7.0}


async def test_cancel_stops_a_running_training_and_delete_removes_it(
    work_dir: Path, source: Path, tmp_path: Path
) -> None:
    jobs = LocalJobs(work_dir)
    await jobs.start_training("long", training("wait.py", args=[str(tmp_path / "never"), "0"]), source_dir=source)
    await log_contains(jobs, "long", "line 1")
    running = await jobs.observe("long")
    assert running is not None
    assert (running.state, running.pid is not None) == ("running", True)

    assert await jobs.cancel("long") is True
    assert running.pid is not None
    assert gone(running.pid)
    observation = await jobs.observe("long")
    assert observation is not None
    assert (observation.state, observation.exit_code) == ("failed", -signal.SIGTERM)
    assert observation.reason is not None
    assert observation.reason.startswith("cancelled (killed by SIGTERM)")
    assert await jobs.cancel("long") is True  # stopped already

    await jobs.delete("long")
    assert not (work_dir / "trainings" / "long").exists()
    assert await jobs.observe("long") is None


async def test_a_training_that_ignores_sigterm_is_killed(work_dir: Path, source: Path, tmp_path: Path) -> None:
    jobs = LocalJobs(work_dir, stop_timeout_s=0.5)
    spec = training("wait.py", args=[str(tmp_path / "never"), "0", "ignore-term"])
    await jobs.start_training("deaf", spec, source_dir=source)
    await log_contains(jobs, "deaf", "line 1")
    assert await jobs.cancel("deaf") is True
    observation = await jobs.observe("deaf")
    assert observation is not None
    assert observation.pid is not None
    assert gone(observation.pid)
    assert (observation.state, observation.exit_code) == ("failed", -signal.SIGKILL)
    assert observation.reason is not None
    assert observation.reason.startswith("cancelled (killed by SIGKILL)")


async def test_a_new_instance_adopts_trainings_started_by_an_earlier_api_process(
    work_dir: Path, source: Path, tmp_path: Path
) -> None:
    """The trainings' parent exits at once, as an API process that restarts would: they are nobody's child here."""
    go = tmp_path / "go"
    specs = {
        "adopted": training("wait.py", args=[str(go), "5"]),
        "adopted-cancel": training("wait.py", args=[str(tmp_path / "never"), "0"]),
    }
    body = json.dumps({name: spec.model_dump(mode="json", by_alias=True) for name, spec in specs.items()})
    subprocess.run(
        [sys.executable, "-c", START_AND_EXIT, str(work_dir), str(source), body], check=True, timeout=DEADLINE_S
    )
    jobs = LocalJobs(work_dir)
    pids: dict[str, int] = {}
    for training_id in specs:
        observation = await jobs.observe(training_id)
        assert observation is not None
        assert observation.state == "running"
        assert observation.pid is not None
        pids[training_id] = observation.pid
    assert not set(pids.values()) & children()
    await jobs.start_training("adopted", specs["adopted"], source_dir=source)  # adopted, not started again

    go.touch()
    observation = await ended(jobs, "adopted")
    assert (observation.state, observation.exit_code, observation.pid) == ("failed", 5, pids["adopted"])
    assert observation.metrics == {"steps": 7.0}
    assert observation.reason is not None
    assert observation.reason.startswith("exit code 5")

    assert await jobs.cancel("adopted-cancel") is True
    assert await eventually_gone(pids["adopted-cancel"])
    cancelled = await jobs.observe("adopted-cancel")
    assert cancelled is not None
    assert (cancelled.state, cancelled.exit_code) == ("failed", -signal.SIGTERM)


async def test_the_census_income_example_trains_as_a_model_training(work_dir: Path) -> None:
    jobs = LocalJobs(work_dir)
    spec = ModelTrainingSpec.model_validate(
        {
            "model": {"name": "census-income", "version": "1.0"},
            "toolchain": "python",
            "localPath": "examples",
            "workDir": "census_income",
            "entrypoint": "train.py",
            "args": ["--output", "{output}"],
        }
    )
    await jobs.start_training("census", spec, source_dir=ROOT / "examples")
    observation = await ended(jobs, "census")
    assert observation.reason is None, observation.reason
    assert observation.state == "succeeded"
    assert observation.metrics["accuracy"] > 0.8
    assert observation.model_dir is not None
    model = lm.load_model(observation.model_dir)
    assert model.name == "census-income"
    assert model.manifest.metrics["accuracy"] == observation.metrics["accuracy"]
    assert model.manifest.provenance.training_id == "census"

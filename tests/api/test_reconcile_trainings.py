"""The training controller stepped by the loop's ``reconcile`` over a real SQLite store, registry and local jobs:
a run whose registration survived but whose status write was lost (an API restart between the two) is recognised
as the run that registered the model, and stays succeeded."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

import pytest
from cryptography.fernet import Fernet

from legion.api.reconcile import Done, Failed, Reconciler
from legion.api.reconcile.trainings import TrainingController
from legion.api.runtime.jobs import LocalJobs
from legion.api.storage import Cipher, ModelRegistry, ResourceStore, create_engine, migrate, sqlite_url

pytestmark = pytest.mark.anyio
DEADLINE_S = 120.0

TRAIN = textwrap.dedent("""
    import os
    import pandas as pd
    import legion.model
    legion.model.init(os.environ["LEGION_MODEL_NAME"], os.environ["LEGION_MODEL_VERSION"])
    legion.model.export_df(lambda df: df["a"] * 2, pd.DataFrame({"a": [1, 2]}))
    legion.model.send_metric("accuracy", 0.5)
    legion.model.save(os.environ["LEGION_OUTPUT_DIR"])
""")


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def test_a_run_whose_status_was_lost_after_it_registered_stays_succeeded(tmp_path: Path) -> None:
    engine = create_engine(sqlite_url(tmp_path))
    migrate(engine)
    store = ResourceStore(engine, Cipher([Fernet.generate_key().decode()]))
    registry = ModelRegistry(engine)
    work_dir = tmp_path / "runtime"
    jobs = LocalJobs(work_dir)
    controller = TrainingController(
        store, registry, jobs, work_dir=work_dir, models_dir=tmp_path / "models", local_root=tmp_path, poll_s=0.05
    )
    reconciler = Reconciler(store)
    reconciler.add(controller)
    code = tmp_path / "code"
    code.mkdir()
    (code / "train.py").write_text(TRAIN)
    store.create("ToolchainIntegration", "python", {"entrypoint": "python"})
    spec = {"model": {"name": "m", "version": "1"}, "toolchain": "python", "localPath": str(code),
            "entrypoint": "train.py"}  # fmt: skip
    store.create("ModelTraining", "t", spec)

    async def run_to_the_end() -> Done | Failed:
        end = time.monotonic() + DEADLINE_S
        while time.monotonic() < end:
            outcome = await reconciler.reconcile("ModelTraining", "t")
            if isinstance(outcome, Done | Failed):
                return outcome
            await asyncio.sleep(0.05)
        raise AssertionError("the training did not end")

    try:
        assert isinstance(await run_to_the_end(), Done)
        succeeded = store.get("ModelTraining", "t").status
        assert succeeded["state"] == "succeeded"
        registered = registry.get("m", "1")

        # The status write after the registration is lost: the next API process finds the run ended again.
        store.update_status("ModelTraining", "t", {**succeeded, "state": "running"})
        assert isinstance(await run_to_the_end(), Done)
        status = store.get("ModelTraining", "t").status
        assert status["state"] == "succeeded", status
        assert registry.get("m", "1") == registered
    finally:
        await jobs.delete("t")
        engine.dispose()

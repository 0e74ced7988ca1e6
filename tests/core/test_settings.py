"""``as_environment``: settings handed to a re-executed command as ``LEGION_*`` variables come back equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion.core.settings import as_environment
from legion.environments import EnvironmentSettings
from legion.serving.settings import ServerSettings


def test_server_settings_come_back_equal_from_their_variables(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    given = ServerSettings(
        model_path=tmp_path / "model dir",
        port=0,
        workers=3,
        max_batch_wait_s=0.25,
        check_versions=False,
        strict_requirements=True,
        properties={"threshold": 0.5, "labels": ["a", "b"], "name": "x y"},
        log_format="json",
        env_manager="local",
        environments=EnvironmentSettings(cache_dir=tmp_path / "envs", timeout_s=60.0),
    )
    variables = as_environment(given)
    assert variables["LEGION_WORKERS"] == "3" and variables["LEGION_CHECK_VERSIONS"] == "false"
    assert variables["LEGION_PROPERTIES"].startswith("{")  # mappings and groups as JSON
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    assert ServerSettings() == given  # type: ignore[call-arg]  # model_path comes from LEGION_MODEL_PATH

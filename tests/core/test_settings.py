"""Settings helpers of ``legion.core.settings``.

``legion_home``: the default data directory of every command, ``$LEGION_DATA_DIR`` or ``~/.legion``, read when a
settings object is built (never at import time); a service's own variable still wins. ``as_environment``: settings
handed to a re-executed command as ``LEGION_*`` variables come back equal."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion.api.settings import ApiSettings
from legion.core.settings import as_environment, legion_home
from legion.environments import EnvironmentSettings
from legion.gateway.settings import GatewaySettings
from legion.serving.settings import ServerSettings


def test_the_data_directory_is_legion_data_dir_else_the_homes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("LEGION_DATA_DIR", raising=False)
    monkeypatch.delenv("LEGION_API_DATA_DIR", raising=False)
    assert legion_home() == tmp_path / "home" / ".legion"
    monkeypatch.setenv("LEGION_DATA_DIR", str(tmp_path / "platform"))
    assert legion_home() == tmp_path / "platform"
    assert ApiSettings().data_dir == tmp_path / "platform"
    assert GatewaySettings().records.dir == tmp_path / "platform" / "logs"
    assert GatewaySettings().records.buffer_dir == tmp_path / "platform" / "gateway" / "buffer"
    monkeypatch.setenv("LEGION_API_DATA_DIR", str(tmp_path / "api"))  # the service's own variable wins
    assert ApiSettings().data_dir == tmp_path / "api"


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

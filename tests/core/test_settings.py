"""``legion_home``: the default data directory of every command, ``$LEGION_DATA_DIR`` or ``~/.legion``, read when a
settings object is built (never at import time); a service's own variable still wins."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion.api.settings import ApiSettings
from legion.core.settings import legion_home
from legion.gateway.settings import GatewaySettings


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

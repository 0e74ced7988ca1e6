"""``legion serve --env-manager virtualenv``: the model runs in its own virtualenv, with the versions it pins.

The model (``tests.support.pinned``) pins six at another minor version than this environment has and answers the
six it runs with. In its virtualenv it answers its pin; with ``--env-manager local`` (the default) it answers this
environment's six, and the mismatch is a warning. The virtualenv is made once per session by the first start
(``pinned_six_virtualenv``) into a private cache; the next start reuses it without calling uv.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from legion.cli.main import cli
from tests.conftest import BuiltVirtualenv
from tests.support.pinned import PINNED_SIX, REQUEST, installed_six
from tests.support.server import serving


def six_answer(url: str) -> str:
    answer = httpx.post(f"{url}/api/model/invoke", json=REQUEST, timeout=30)
    assert answer.status_code == 200, answer.text
    [[version]] = answer.json()["prediction"]
    return str(version)


def snapshot(directory: Path) -> dict[str, int]:
    """Every path under ``directory`` with its modification time (nanoseconds)."""
    return {str(p.relative_to(directory)): p.lstat().st_mtime_ns for p in sorted(directory.rglob("*"))}


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_the_first_start_makes_the_virtualenv_and_the_model_runs_with_its_pins(
    pinned_six_virtualenv: BuiltVirtualenv,
) -> None:
    built = pinned_six_virtualenv
    assert built.answer == {"prediction": [[PINNED_SIX]], "columns": ["six"]}
    assert "building the model's virtualenv" in built.stderr
    assert "the model needs" not in built.stderr  # what runs it has the model's pins: nothing to warn about
    [environment] = [p for p in built.cache_dir.iterdir() if p.is_dir()]
    marker = json.loads((environment / "legion-env.json").read_text())
    assert marker["modelRequirements"] == [f"six=={PINNED_SIX}"]
    assert (environment / "bin" / "python").exists()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_second_start_reuses_the_virtualenv_without_installing(pinned_six_virtualenv: BuiltVirtualenv) -> None:
    built = pinned_six_virtualenv
    before = snapshot(built.cache_dir)
    env = {"LEGION_ENVS_CACHE_DIR": str(built.cache_dir), "LEGION_ENVS_UV": "/nonexistent/uv"}  # uv is not needed
    with serving(built.model_dir, ["--env-manager", "virtualenv"], env, startup_deadline_s=120) as server:
        assert six_answer(server.url) == PINNED_SIX
    assert "reusing the model's virtualenv" in server.stderr
    assert "building" not in server.stderr
    assert snapshot(built.cache_dir) == before


def test_the_local_env_manager_runs_the_model_here_and_warns(pinned_six_model_dir: Path) -> None:
    with serving(pinned_six_model_dir, ["--env-manager", "local"]) as server:
        assert six_answer(server.url) == installed_six()
    assert f"six: the model needs {PINNED_SIX}, {installed_six()} is installed" in server.stderr
    assert "virtualenv" not in server.stderr


def test_without_uv_the_virtualenv_manager_says_so(
    pinned_six_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no uv on PATH, and none next to this Python
    monkeypatch.setenv("LEGION_ENVS_CACHE_DIR", str(tmp_path / "envs"))
    monkeypatch.delenv("LEGION_ENVS_UV", raising=False)
    result = CliRunner().invoke(cli, ["serve", str(pinned_six_model_dir), "--env-manager", "virtualenv"])
    assert result.exit_code == 7, result.output
    assert "Error: uv is not installed" in result.stderr
    assert "pip install uv" in result.stderr
    assert not any((tmp_path / "envs").glob("*/bin"))  # nothing half-made is left


def test_a_uv_setting_that_names_nothing_is_said(pinned_six_model_dir: Path, tmp_path: Path) -> None:
    env = {"LEGION_ENVS_CACHE_DIR": str(tmp_path / "envs"), "LEGION_ENVS_UV": str(tmp_path / "uv")}
    result = CliRunner().invoke(cli, ["serve", str(pinned_six_model_dir), "--env-manager", "virtualenv"], env=env)
    assert result.exit_code == 7, result.output
    assert f"Error: uv is not at {tmp_path / 'uv'} (LEGION_ENVS_UV)" in result.stderr

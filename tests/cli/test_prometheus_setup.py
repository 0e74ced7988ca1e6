"""``legion.cli.prometheus``: the configuration ``legion up --prometheus`` writes, where it finds the binary, and the
error when there is none.

The configuration is checked by Prometheus' own ``promtool check config`` (``scripts/setup.sh`` unpacks it); the
token never appears in it, only in a file of mode 0600.
"""

from __future__ import annotations

import shutil
import socket
import stat
import subprocess
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from legion.cli.main import cli
from legion.cli.prometheus import REPOSITORY_COPY, PrometheusServer, PrometheusSettings, find_binary, write_config
from legion.core.errors import NotFoundError, UnavailableError

TOKEN = "eyJ.secret.token"  # a stand-in, never verified


def promtool() -> str | None:
    local = REPOSITORY_COPY.with_name("promtool")
    return shutil.which("promtool") or (str(local) if local.is_file() else None)


def executable(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\n")
    path.chmod(0o755)
    return path


def test_the_config_passes_promtool_and_keeps_the_token_in_a_private_file(tmp_path: Path) -> None:
    config = write_config(tmp_path / "prom", "http://127.0.0.1:5080", "http://127.0.0.1:5090", TOKEN)
    text = config.read_text()
    assert TOKEN not in text
    token_file = tmp_path / "prom" / "api.token"
    assert token_file.read_text() == TOKEN
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600

    document = yaml.safe_load(text)
    jobs = {job["job_name"]: job for job in document["scrape_configs"]}
    assert set(jobs) == {"legion-api", "legion-models", "legion-gateway"}
    bearer = {"type": "Bearer", "credentials_file": str(token_file)}
    assert jobs["legion-api"]["authorization"] == bearer
    assert jobs["legion-api"]["http_sd_configs"] == [
        {"url": "http://127.0.0.1:5080/api/v1/prometheus/targets?component=api", "refresh_interval": "2s",
         "authorization": bearer}
    ]  # fmt: skip
    assert "authorization" not in jobs["legion-models"]  # a replica runs a user's code: no token goes there
    assert jobs["legion-models"]["http_sd_configs"][0]["authorization"] == bearer
    assert jobs["legion-gateway"]["static_configs"] == [
        {"targets": ["127.0.0.1:5090"], "labels": {"component": "gateway"}}
    ]

    tool = promtool()
    if tool is None:
        pytest.skip("promtool is not available (scripts/setup.sh unpacks it from Debian's prometheus package)")
    checked = subprocess.run([tool, "check", "config", str(config)], capture_output=True, text=True, check=False)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_an_older_token_file_is_made_private_again(tmp_path: Path) -> None:
    token_file = tmp_path / "api.token"
    token_file.write_text("old")
    token_file.chmod(0o644)
    write_config(tmp_path, "http://127.0.0.1:5080", "http://127.0.0.1:5090", TOKEN)
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    assert token_file.read_text() == TOKEN


def test_without_auth_there_is_no_token_and_no_authorization(tmp_path: Path) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:5080", "http://127.0.0.1:5090", None)
    assert not (tmp_path / "api.token").exists()
    assert "authorization" not in config.read_text()


def test_the_binary_is_the_option_then_the_setting_then_path_then_the_repository_copy(tmp_path: Path) -> None:
    option, setting = executable(tmp_path / "option" / "prometheus"), executable(tmp_path / "setting" / "prometheus")
    on_path, fallback = executable(tmp_path / "bin" / "prometheus"), executable(tmp_path / "cache" / "prometheus")
    settings = PrometheusSettings(binary=setting)
    path = str(tmp_path / "bin")
    assert find_binary(option, settings, path, fallback) == option
    assert find_binary(None, settings, path, fallback) == setting
    assert find_binary(None, PrometheusSettings(), path, fallback) == on_path
    assert find_binary(None, PrometheusSettings(), str(tmp_path / "empty"), fallback) == fallback
    with pytest.raises(NotFoundError, match=r"no prometheus binary found; install Debian's prometheus package"):
        find_binary(None, PrometheusSettings(), str(tmp_path / "empty"), tmp_path / "missing")
    with pytest.raises(NotFoundError, match=r"is not an executable file"):
        find_binary(tmp_path / "setting", settings, path, fallback)  # a directory


def test_up_without_a_binary_fails_before_it_starts_anything(tmp_path: Path) -> None:
    manifest = tmp_path / "deployment.yaml"
    manifest.write_text("kind: ModelDeployment\nid: d\nspec: {image: models/m}\n")
    data_dir = tmp_path / "legion"
    result = CliRunner(env={"LEGION_CONFIG_FILE": str(tmp_path / "cli.yaml")}).invoke(
        cli,
        ["up", "--prometheus", "--prometheus-binary", str(tmp_path / "nowhere" / "prometheus"),
         "--data-dir", str(data_dir), "-f", str(manifest)],
    )  # fmt: skip
    assert result.exit_code == NotFoundError.exit_code, result.output
    assert f"Error: {tmp_path / 'nowhere' / 'prometheus'} is not an executable file; install" in result.output
    assert "--prometheus-binary PATH" in result.output
    assert not data_dir.exists()  # no API was started


def test_a_taken_port_is_a_clear_error_with_prometheus_own_words(tmp_path: Path) -> None:
    try:
        binary = find_binary(None, PrometheusSettings())
    except NotFoundError as exc:
        pytest.skip(f"no Prometheus to run: {exc.detail}")
    config = write_config(tmp_path, "http://127.0.0.1:5080", "http://127.0.0.1:5090", None)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        with pytest.raises(UnavailableError, match=r"(?s)prometheus did not start .*address already in use"):
            PrometheusServer.start(binary, config, tmp_path, port=taken.getsockname()[1])

"""The commands that start a service build their settings one way (``legion.cli.options``): the options a user
gave win, the environment fills the rest, and a refused value is ``Error: ...`` with exit code 2, never a
traceback. Run in process through Click's runner; ``legion serve`` takes its runner as an argument, so a test
sees the settings the server would be given without starting one (one test starts a real server)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import click
import httpx
import pytest
from click.testing import CliRunner

from legion.cli.api_cmd import api
from legion.cli.gateway_cmd import gateway
from legion.cli.main import cli
from legion.cli.serve import serve, serve_command
from legion.serving.settings import ServerSettings
from tests.support.server import ServerProcess


def recorded_serve(runs: list[ServerSettings]) -> click.Command:
    def run(settings: ServerSettings, announce: Callable[[str], None]) -> int:
        runs.append(settings)
        return 0

    return serve_command(run)


def test_serve_takes_what_was_not_given_from_the_environment(summation_model_dir: Path) -> None:
    runs: list[ServerSettings] = []
    env = {"LEGION_PORT": "6001", "LEGION_WORKERS": "3", "LEGION_MAX_BATCH_SIZE": "8", "LEGION_BATCH_LINGER_S": "0"}
    result = CliRunner(env=env).invoke(recorded_serve(runs), [str(summation_model_dir)])
    assert result.exit_code == 0, result.output
    [settings] = runs
    assert (settings.port, settings.workers, settings.max_batch_size, settings.batch_linger_s) == (6001, 3, 8, 0.0)
    assert settings.model_path == summation_model_dir


def test_serve_options_given_win_over_the_environment(summation_model_dir: Path) -> None:
    runs: list[ServerSettings] = []
    result = CliRunner(env={"LEGION_PORT": "6001", "LEGION_CHECK_VERSIONS": "true"}).invoke(
        recorded_serve(runs), [str(summation_model_dir), "--port", "6002", "--no-version-check", "--property", "a=1"]
    )
    assert result.exit_code == 0, result.output
    [settings] = runs
    assert (settings.port, settings.check_versions, settings.properties) == (6002, False, {"a": "1"})


def test_serve_defaults_shown_in_help_are_the_settings_defaults(summation_model_dir: Path) -> None:
    runs: list[ServerSettings] = []
    assert CliRunner().invoke(recorded_serve(runs), [str(summation_model_dir)]).exit_code == 0
    fields = {"max_batch_wait": "max_batch_wait_s", "batch_linger": "batch_linger_s"}
    shown = {p.name: p.default for p in serve.params if isinstance(p, click.Option) and p.show_default}
    assert shown
    for name, default in shown.items():
        assert getattr(runs[0], fields.get(name or "", name or "")) == default, name


def test_legion_port_variable_reaches_the_listening_socket(summation_model_dir: Path) -> None:
    # 0 rather than a fixed port: a server that ignored the variable would listen on the default 5000 instead
    command = [sys.executable, "-m", "legion", "serve", str(summation_model_dir)]
    server = ServerProcess(summation_model_dir, command=command, env={"LEGION_PORT": "0"})
    try:
        server.wait_ready()
        assert urlsplit(server.url).port not in (None, 5000)
        assert httpx.get(f"{server.url}/healthcheck", timeout=10).json()["status"] == "ok"
    finally:
        server.stop()


MODEL = "<model>"
BAD_VALUES: list[tuple[str, list[str], dict[str, str]]] = [
    ("serve", ["--port", "99999"], {}),
    ("serve", ["--port", "abc"], {}),
    ("serve", ["--workers", "0"], {}),
    ("serve", ["--max-batch-size", "0"], {}),
    ("serve", ["--max-batch-wait", "2"], {}),
    ("serve", ["--batch-linger", "1"], {}),
    ("serve", ["--max-body-bytes", "10"], {}),
    ("serve", ["--property", "no-equals-sign"], {}),
    ("serve", [], {"LEGION_PORT": "abc"}),
    ("serve", [], {"LEGION_WORKERS": "0"}),
    ("serve", ["--env-manager", "conda"], {}),
    ("serve", [], {"LEGION_ENV_MANAGER": "conda"}),
    ("serve", [], {"LEGION_ENVS_TIMEOUT_S": "0"}),
    ("api", ["--port", "99999"], {}),
    ("api", ["--port", "-1"], {}),
    ("api", ["--port", "abc"], {}),
    ("api", ["--runtime", "cloud"], {}),
    ("api", [], {"LEGION_API_PORT": "abc"}),
    ("api", [], {"LEGION_API_RESYNC_S": "0"}),
    ("gateway", ["--port", "99999"], {}),
    ("gateway", ["--port", "abc"], {}),
    ("gateway", ["--workers", "0"], {}),
    ("gateway", ["--log-sink", "paper"], {}),
    ("gateway", [], {"LEGION_GATEWAY_WORKERS": "100"}),
    ("gateway", [], {"LEGION_GATEWAY_COLD_START_TIMEOUT_S": "-1"}),
    ("gateway", [], {"LEGION_GATEWAY_UPSTREAM__COLD_START_TIMEOUT_S": "soon"}),
    ("gateway", [], {"LEGION_GATEWAY_LOG_FLUENTD_PORT": "0"}),
]


@pytest.mark.parametrize(("command", "args", "env"), BAD_VALUES)
def test_a_bad_value_is_an_error_with_exit_code_2(
    command: str, args: list[str], env: dict[str, str], summation_model_dir: Path
) -> None:
    argv = [command, *([str(summation_model_dir)] if command == "serve" else []), *args]
    result = CliRunner(env=env).invoke(cli, argv)
    assert result.exit_code == 2, result.output
    assert isinstance(result.exception, SystemExit)
    assert "Error: " in result.output
    assert "Traceback" not in result.output


@pytest.mark.parametrize("command", [serve, api, gateway], ids=lambda command: command.name)
def test_every_option_that_can_be_bad_is_tried(command: click.Command) -> None:
    tried = {arg for name, args, _ in BAD_VALUES if name == command.name for arg in args if arg.startswith("--")}
    can_be_bad = {
        option.opts[-1]
        for option in command.params
        if isinstance(option, click.Option)
        and not option.is_flag
        and (option.type in (click.INT, click.FLOAT) or isinstance(option.type, click.Choice) or option.multiple)
    }
    assert can_be_bad
    assert can_be_bad <= tried

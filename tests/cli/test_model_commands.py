"""``legion model test|info|invoke`` and error rendering, run in process through Click's runner (``invoke`` against
a real management API and gateway)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from legion.cli.main import cli
from legion.core.errors import UnauthorizedError
from tests.api.conftest import Api, api  # noqa: F401  # the module-scoped API server fixture
from tests.gateway.conftest import deployment, gateway_process, snapshot, write_routing

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_model_test_predicts_through_the_server_code_path(runner: CliRunner, census_model_dir: Path) -> None:
    request: dict[str, Any] = json.loads((ROOT / "examples/census_income/request.json").read_text())
    result = runner.invoke(cli, ["model", "test", str(census_model_dir), "--json", json.dumps(request)])
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    assert answer["columns"] == ["<=50K", ">50K"]
    assert answer["prediction"][0][1] > 0.5  # the example's known row earns more than 50K


def test_model_test_takes_records_and_objects(runner: CliRunner, summation_model_dir: Path) -> None:
    records = runner.invoke(
        cli, ["model", "test", str(summation_model_dir), "--endpoint", "sum_and_pow", "--json", '[{"a": 2, "b": 3}]']
    )
    assert json.loads(records.stdout) == {"prediction": [[5, 8]], "columns": ["sum", "pow"]}
    untyped = runner.invoke(cli, ["model", "test", str(summation_model_dir), "--json", '{"a": 2, "b": 3}'])
    assert json.loads(untyped.stdout) == {"result": 5}


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--json", "{oops"], 2, "Error: --json is not valid JSON"),
        (
            ["--json", '{"a": "x", "b": 1}', "--endpoint", "sum_and_pow"],
            2,
            "Error: invalid input: a: 'x' is not an integer",
        ),
        (
            ["--json", "{}", "--endpoint", "nope"],
            3,
            "Error: model 'summation' has no endpoint 'nope'; valid endpoints:",
        ),
        (["--json", "5"], 2, "Error: an untyped endpoint takes one JSON object"),
    ],
)
def test_model_test_errors_are_named_with_an_exit_code(
    runner: CliRunner, summation_model_dir: Path, args: list[str], code: int, message: str
) -> None:
    result = runner.invoke(cli, ["model", "test", str(summation_model_dir), *args])
    assert result.exit_code == code
    assert message in result.output
    assert "Traceback" not in result.output


def test_model_info_prints_the_manifest(runner: CliRunner, summation_model_dir: Path) -> None:
    result = runner.invoke(cli, ["model", "info", str(summation_model_dir)])
    assert result.exit_code == 0
    assert "name: summation" in result.output
    assert "sum_and_pow" in result.output


def test_a_path_that_is_not_a_model_is_a_clean_error(runner: CliRunner, tmp_path: Path) -> None:
    result = runner.invoke(cli, ["model", "info", str(tmp_path)])
    assert result.exit_code == 8
    assert result.output.startswith("Error: ")
    missing = runner.invoke(cli, ["serve", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output


def test_bad_serve_options_are_refused(runner: CliRunner, summation_model_dir: Path) -> None:
    result = runner.invoke(cli, ["serve", str(summation_model_dir), "--workers", "0"])
    assert result.exit_code == 2
    assert "workers" in result.output
    prop = runner.invoke(cli, ["serve", str(summation_model_dir), "--property", "novalue"])
    assert "--property takes NAME=VALUE" in prop.output
    linger = runner.invoke(cli, ["serve", str(summation_model_dir), "--batch-linger", "-1"])
    assert linger.exit_code == 2
    assert "batch_linger_s" in linger.output


def test_legionctl_is_the_same_command() -> None:
    result = subprocess.run([sys.executable, "-m", "legion", "--version"], capture_output=True, text=True, check=True)
    assert result.stdout.startswith("legion, version")
    assert Path(sys.executable).with_name("legionctl").exists()


def test_json_is_read_from_a_file_or_standard_input(
    runner: CliRunner, summation_model_dir: Path, tmp_path: Path
) -> None:
    command = ["model", "test", str(summation_model_dir), "--endpoint", "sum_and_pow", "--json"]
    request = tmp_path / "request.json"
    request.write_text('[{"a": 2, "b": 3}]')
    from_file = runner.invoke(cli, [*command, f"@{request}"])
    from_stdin = runner.invoke(cli, [*command, "@-"], input=request.read_text())
    assert from_file.exit_code == from_stdin.exit_code == 0, from_file.output + from_stdin.output
    assert (
        json.loads(from_file.stdout)
        == json.loads(from_stdin.stdout)
        == {"prediction": [[5, 8]], "columns": ["sum", "pow"]}
    )
    missing = runner.invoke(cli, [*command, f"@{tmp_path / 'nowhere.json'}"])
    assert missing.exit_code == 2
    assert f"no such file: {tmp_path / 'nowhere.json'}" in missing.output


def test_a_401_from_the_model_exits_as_a_401_from_the_api(api: Api, tmp_path: Path) -> None:  # noqa: F811
    runner = CliRunner(env={"LEGION_API_URL": api.url, "LEGION_API_TOKEN": api.admin, "LEGION_MODEL_TOKEN": None,
                            "LEGION_CONFIG_FILE": str(tmp_path / "config.yaml")})  # fmt: skip
    assert runner.invoke(cli, ["deploy", "toy", "--image", "models/toy"]).exit_code == 0
    routing = tmp_path / "routing.json"
    write_routing(routing, snapshot([deployment("toy", ["http://127.0.0.1:9"])]))
    invoke = ["model", "invoke", "toy", "--json", f"@{ROOT / 'examples/census_income/request.json'}"]
    with gateway_process(routing) as gateway:
        no_token = runner.invoke(cli, [*invoke, "--url", gateway.url])
        bad_token = runner.invoke(cli, [*invoke, "--url", gateway.url, "--token", "not-a-token"])
    from_the_api = runner.invoke(cli, invoke, env={"LEGION_API_TOKEN": "not-a-token"})
    assert from_the_api.exit_code == UnauthorizedError.exit_code, from_the_api.output
    for result in (no_token, bad_token):
        assert result.exit_code == UnauthorizedError.exit_code, result.output  # was 2, a usage error's
        assert result.stderr.startswith("Error: the model answered 401: "), result.stderr

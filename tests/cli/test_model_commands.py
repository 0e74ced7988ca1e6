"""``legion model test|info`` and error rendering, run in process through Click's runner."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from legion.cli.main import cli

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

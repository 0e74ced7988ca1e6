"""``legion model info DEPLOYMENT`` (and Legion's ``--md DEPLOYMENT``): the manifest of the model a deployment
serves, asked of a real management API (in-memory runtime) on 127.0.0.1; a path that exists here is still the
local model; a name that is neither is an error naming it, with NotFound's exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
import yaml
from click.testing import CliRunner, Result

from legion.cli.main import cli
from legion.core.errors import NotFoundError
from legion.model import ModelBuilder
from tests.api.conftest import cli_token, start_api
from tests.support.server import wait_until


@dataclass(frozen=True)
class Platform:
    url: str
    token: str
    config_file: Path

    def legion(self, *args: str) -> Result:
        env = {"LEGION_API_URL": self.url, "LEGION_API_TOKEN": self.token, "LEGION_CONFIG_FILE": str(self.config_file)}
        return CliRunner(env=env).invoke(cli, list(args))


def save_model(path: Path, name: str) -> Path:
    builder = ModelBuilder(name, "2.1")
    builder.export_df(lambda df: df["age"] * 2.0, pd.DataFrame({"age": [30, 40], "city": ["a", "b"]}))
    builder.send_metric("accuracy", 0.9)
    builder.define_property("threshold", 0.5)
    return builder.save(path)


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    data_dir = tmp_path_factory.mktemp("legion-info")
    server = start_api(data_dir, "--runtime", "memory")
    try:
        token = cli_token(data_dir, "admin")
        model = save_model(tmp_path_factory.mktemp("census-like") / "model", "census-like")
        headers = {"Authorization": f"Bearer {token}"}
        deployments = f"{server.url}/api/v1/model/deployment"
        created = httpx.post(deployments, headers=headers, json={"id": "census", "spec": {"image": str(model)}})
        assert created.status_code == 201, created.text
        wait_until(
            lambda: httpx.get(f"{deployments}/census", headers=headers).json()["status"].get("state") == "Ready",
            60,
            "the deployment to be Ready",
        )
        yield Platform(server.url, token, data_dir / "cli.yaml")
    finally:
        server.stop()


def test_info_of_a_deployment_shows_its_models_manifest(platform: Platform) -> None:
    result = platform.legion("model", "info", "census")
    assert result.exit_code == 0, result.output
    manifest = yaml.safe_load(result.stdout)
    assert (manifest["name"], manifest["version"], manifest["flavor"]) == ("census-like", "2.1", "python_function")
    assert manifest["endpoints"]["default"]["columns"] == [
        {"name": "age", "type": "int64", "nullable": False},
        {"name": "city", "type": "string", "nullable": False},
    ]
    assert manifest["endpoints"]["default"]["output"][0]["type"] == "float64"
    assert manifest["requirements"]["pandas"] == pd.__version__
    assert manifest["metrics"] == {"accuracy": 0.9}
    assert manifest["properties"] == {"threshold": 0.5}
    assert manifest["provenance"]["createdAt"]
    assert "model census-like:2.1: registered (source deployment/census); deployed in census" in result.stderr


def test_legions_md_option_and_json_output(platform: Platform) -> None:
    as_yaml = yaml.safe_load(platform.legion("model", "info", "census").stdout)
    result = platform.legion("model", "info", "--md", "census", "-o", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout) == as_yaml
    column = platform.legion(
        "model", "info", "--model-deployment", "census", "-o", "jsonpath={.endpoints.default.columns[1].type}"
    )
    assert column.stdout.strip() == "string"


def test_a_path_that_exists_here_is_the_local_model(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    local = save_model(tmp_path / "census", "local-model")  # named like the deployment, and a path in the cwd
    monkeypatch.chdir(tmp_path)
    result = platform.legion("model", "info", "census")
    assert result.exit_code == 0, result.output
    assert yaml.safe_load(result.stdout)["name"] == "local-model"
    as_json = platform.legion("model", "info", str(local), "-o", "json")
    assert json.loads(as_json.stdout)["endpoints"]["default"]["columns"][0]["name"] == "age"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["nope"],
            "Error: 'nope' is not a path on this machine; as a ModelDeployment: ModelDeployment 'nope' not found",
        ),
        (["--md", "nope"], "Error: ModelDeployment 'nope' not found"),
    ],
)
def test_a_name_that_is_neither_is_an_error_naming_it(platform: Platform, args: list[str], message: str) -> None:
    result = platform.legion("model", "info", *args)
    assert result.exit_code == NotFoundError.exit_code
    assert message in result.output
    assert "Traceback" not in result.output


def test_a_path_and_a_deployment_together_are_refused(platform: Platform) -> None:
    both = platform.legion("model", "info", "census", "--md", "census")
    assert both.exit_code == 2
    assert "one of them" in both.output
    neither = platform.legion("model", "info")
    assert neither.exit_code == 2
    table = platform.legion("model", "info", "census", "-o", "table")
    assert table.exit_code == 2
    assert "Error: model info prints yaml, json or jsonpath=EXPR, not a table" in table.output
    long_name = platform.legion("model", "info", "x" * 300)
    assert long_name.exit_code == 2  # too long for a path here, and for a deployment id there: named, no traceback
    assert long_name.output.startswith("Error: ") and "Traceback" not in long_name.output


def test_the_registry_lists_the_deployed_model_with_its_deployment(platform: Platform) -> None:
    result = platform.legion("model", "list", "--name", "census-like", "-o", "json")
    assert result.exit_code == 0, result.output
    [entry] = json.loads(result.stdout)
    assert (entry["version"], entry["source"], entry["deployments"]) == ("2.1", "deployment/census", ["census"])
    # the registry is not a resource kind, but `legion get model` is where a kubectl user looks for it
    got = platform.legion("get", "model", "census-like", "-o", "json")
    assert got.exit_code == 0, got.output
    assert json.loads(got.stdout) == json.loads(result.stdout)
    table = platform.legion("get", "models")
    assert table.exit_code == 0, table.output
    assert table.stdout.splitlines()[0].split() == ["NAME", "VERSION", "SOURCE", "METRICS", "DEPLOYMENTS"]
    assert any(line.split()[:2] == ["census-like", "2.1"] for line in table.stdout.splitlines()[1:])

"""The resource commands end to end against a real management API: apply, get, describe, delete, tokens, login;
bad files change nothing and print ``Error: ...`` with a non-zero exit code."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from legion.cli.main import cli
from tests.api.conftest import Api, api  # noqa: F401  # the module-scoped API server fixture

MANIFESTS = """\
kind: Connection
id: repo
spec: {type: git, uri: "git@host:team/models.git", keySecret: CLI-SECRET-42}
---
kind: ToolchainIntegration
id: python
spec: {entrypoint: legion-train, defaultImage: "python:3.11"}
---
kind: ModelDeployment
id: census
metadata: {labels: {team: income}}
spec: {image: models/census, minReplicas: 2}
---
kind: ModelRoute
id: income
spec:
  urlPrefix: /income
  modelDeployments: [{mdName: census}]
"""


@pytest.fixture
def run(api: Api, tmp_path: Path) -> Iterator[object]:  # noqa: F811
    runner = CliRunner(env={"LEGION_API_URL": api.url, "LEGION_API_TOKEN": api.admin,
                            "LEGION_CONFIG_FILE": str(tmp_path / "config.yaml")})  # fmt: skip

    def invoke(*args: str, token: str | None = None, stdin: str | None = None) -> Result:
        env = {"LEGION_API_TOKEN": token} if token else {}
        return runner.invoke(cli, list(args), env=env, input=stdin)

    yield invoke


def write(tmp_path: Path, text: str, name: str = "objects.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_apply_creates_then_reports_unchanged_and_changed(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    first = run("apply", "-f", write(tmp_path, MANIFESTS))
    assert first.exit_code == 0, first.output
    assert first.stdout.splitlines()[-1] == "4 created, 0 changed, 0 unchanged"
    again = run("apply", "-f", write(tmp_path, MANIFESTS))
    assert again.stdout.splitlines()[-1] == "0 created, 0 changed, 4 unchanged"
    changed = run("apply", "-f", write(tmp_path, MANIFESTS.replace("minReplicas: 2", "minReplicas: 3")))
    assert "ModelDeployment census changed" in changed.stdout
    assert changed.stdout.splitlines()[-1] == "0 created, 1 changed, 3 unchanged"


def test_get_and_describe_in_every_format(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("apply", "-f", write(tmp_path, MANIFESTS))
    table = run("get", "dep").stdout.splitlines()
    assert table[0].split()[:3] == ["ID", "STATE", "READY"]
    assert any(line.startswith("census") for line in table)
    as_json = json.loads(run("get", "dep", "census", "-o", "json").stdout)
    assert as_json["spec"]["image"] == "models/census"
    assert run("get", "route", "-o", "jsonpath={.items[*].spec.urlPrefix}").stdout.strip() == "/income"
    assert run("get", "dep", "-l", "team=income", "-o", "jsonpath={.items[*].id}").stdout.strip() == "census"
    described = run("describe", "ModelDeployment", "census").stdout
    assert "state: Processing" in described
    connections = run("get", "conn", "-o", "yaml").stdout + run("describe", "conn", "repo").stdout
    assert "CLI-SECRET-42" not in connections
    assert "*****" in connections


@pytest.mark.parametrize(
    ("text", "code", "message"),
    [
        ("kind: ModelDeployment\nid: x\nspec: {image: a\n", 2, "invalid YAML at line"),
        ("kind: Pipeline\nid: x\nspec: {}\n", 2, "unknown kind 'Pipeline'"),
        (
            "kind: ModelDeployment\nid: ok-one\nspec: {image: a}\n---\nkind: ModelDeployment\nid: Bad\nspec: {image: a}\n",
            2,
            "document 2",
        ),
        (
            "kind: ModelRoute\nid: r2\nspec: {urlPrefix: /r2, modelDeployments: [{mdName: ghost}]}\n",
            2,
            "spec.modelDeployments.0.mdName: no ModelDeployment 'ghost'",
        ),
    ],
)
def test_bad_files_are_named_errors_that_change_nothing(
    run, tmp_path: Path, text: str, code: int, message: str
) -> None:  # type: ignore[no-untyped-def]
    before = run("get", "dep", "-o", "json").stdout
    result = run("apply", "-f", write(tmp_path, text))
    assert result.exit_code == code, result.output
    assert result.output.startswith("Error: ")
    assert message in result.output
    assert "Traceback" not in result.output
    assert run("get", "dep", "-o", "json").stdout == before


def test_deleting_a_referenced_object_is_refused(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    run("apply", "-f", write(tmp_path, MANIFESTS))
    refused = run("delete", "dep", "census")
    assert refused.exit_code == 4
    assert "still used by ModelRoute 'income'" in refused.output
    assert run("delete", "-f", write(tmp_path, MANIFESTS)).exit_code == 0  # reverse order: route first
    assert run("get", "dep", "-o", "json").stdout.strip() == "[]"


def test_delete_f_passes_over_missing_objects_deletes_the_rest_and_counts(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, MANIFESTS)
    assert run("apply", "-f", path).exit_code == 0
    assert run("delete", "conn", "repo").exit_code == 0  # one object of the file is gone already
    result = run("delete", "-f", path)
    assert result.exit_code == 3, result.output  # NotFoundError's code, after deleting everything else
    lines = result.stdout.splitlines()
    assert "Connection repo not found" in lines
    assert {
        "ModelRoute income deleted",
        "ModelDeployment census deleted",
        "ToolchainIntegration python deleted",
    } <= set(lines)
    assert lines[-1] == "3 deleted, 1 not found"
    assert f"Error: 1 of the 4 objects of {path} did not exist: Connection repo" in result.stderr
    for kind in ("conn", "ti", "dep", "route"):
        assert run("get", kind, "-o", "json").stdout.strip() == "[]"


def test_file_errors_name_the_file_and_the_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = write(tmp_path, "kind: ModelDeployment\nid: x\nspec: {image: a\n", "broken.yaml")
    for command in ("apply", "create", "delete"):
        result = run(command, "-f", path)
        assert result.exit_code == 2, result.output
        assert result.stderr.startswith(f"Error: {path}: invalid YAML at line 4, column 1: "), result.stderr
    piped = run("apply", "-f", "-", stdin="kind: Connection\nid: [\n")
    assert piped.stderr.startswith("Error: standard input: invalid YAML at line "), piped.stderr


def test_roles_and_tokens(run, api: Api, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]  # noqa: F811
    forbidden = run("apply", "-f", write(tmp_path, MANIFESTS), token=api.viewer)
    assert forbidden.exit_code == 6
    assert "may not change" in forbidden.output
    token = run("token", "create", "--model", "census:1.0", "--expires-in", "60")
    assert token.exit_code == 0, token.output
    assert token.stdout.count(".") == 2  # a JWT
    unreachable = CliRunner(env={"LEGION_API_URL": "http://127.0.0.1:9"}).invoke(cli, ["get", "dep"])
    assert unreachable.exit_code == 7
    assert "cannot reach the Legion API at http://127.0.0.1:9" in unreachable.output


def test_login_saves_a_context_and_config_masks_tokens(api: Api, tmp_path: Path) -> None:  # noqa: F811
    runner = CliRunner(env={"LEGION_CONFIG_FILE": str(tmp_path / "config.yaml")})
    bad = runner.invoke(cli, ["login", "--url", api.url, "--token", "nonsense"])
    assert bad.exit_code == 5
    assert not (tmp_path / "config.yaml").exists()
    good = runner.invoke(cli, ["login", "--url", api.url, "--token", api.admin, "--context", "laptop"])
    assert good.exit_code == 0, good.output
    view = runner.invoke(cli, ["config", "view"]).stdout
    assert "laptop" in view
    assert api.admin not in view
    assert runner.invoke(cli, ["get", "dep"]).exit_code == 0  # the saved context is used
    assert runner.invoke(cli, ["config", "use", "nope"]).exit_code == 2

"""Legion's era-a shortcuts against a real management API with the in-memory runtime: ``deploy --replicas 0`` and
``scale 0`` say that the deployment now scales from zero, and ``inspect``/``get`` show it as READY
``0/0 (scales from zero)``, never ``1/0``."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from click.testing import CliRunner, Result

from legion.cli.main import cli
from tests.api.conftest import cli_token, start_api

Run = Callable[..., Result]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Run]:
    data_dir = tmp_path_factory.mktemp("shortcuts-api")
    server = start_api(data_dir, "--runtime", "memory")
    runner = CliRunner(env={"LEGION_API_URL": server.url, "LEGION_API_TOKEN": cli_token(data_dir, "admin"),
                            "LEGION_CONFIG_FILE": str(data_dir / "cli-config.yaml")})  # fmt: skip

    def invoke(*args: str) -> Result:
        result = runner.invoke(cli, list(args))
        assert result.exit_code == 0, result.output
        return result

    try:
        yield invoke
    finally:
        server.stop()


def ready_of(run: Run, deployment_id: str, *command: str) -> str:
    for line in run(*command).stdout.splitlines():
        if line.split()[:1] == [deployment_id]:
            return _ready_cell(line)
    raise AssertionError(f"{deployment_id} is not listed by {command}")


def _ready_cell(line: str) -> str:
    """The READY cell of an ``inspect`` line: ``ID STATE READY IMAGE URL``, READY possibly holding spaces."""
    cells = line.split()
    end = next(i for i, cell in enumerate(cells) if cell.startswith("models/"))
    return " ".join(cells[2:end])


def test_scale_to_zero_says_so_and_shows_0_of_0(run: Run) -> None:
    deployed = run("deploy", "census", "--image", "models/census", "--replicas", "2", "--wait", "--timeout", "60")
    assert "scales from zero" not in deployed.stdout
    assert ready_of(run, "census", "inspect") == "2/2"

    scaled = run("scale", "census", "--replicas", "0", "--wait", "--timeout", "60")
    assert "ModelDeployment census scaled to 0; it now scales from zero: no replica runs until a request comes " \
           "through the gateway" in scaled.stdout  # fmt: skip
    assert "census: Ready 0/0 (scales from zero)" in scaled.stderr
    assert ready_of(run, "census", "inspect") == "0/0 (scales from zero)"
    assert ready_of(run, "census", "get", "dep") == "0/0 (scales from zero)"

    back = run("scale", "census", "--replicas", "1", "--wait", "--timeout", "60")
    assert "scaled to 1; it no longer scales from zero" in back.stdout
    assert ready_of(run, "census", "inspect") == "1/1"


def test_deploy_with_no_replicas_says_it_scales_from_zero(run: Run) -> None:
    deployed = run("deploy", "idle", "--image", "models/idle", "--replicas", "0", "--wait", "--timeout", "60")
    assert deployed.stdout.startswith("ModelDeployment idle created; it scales from zero: no replica runs until")
    assert "ready: a request through the gateway starts a replica" in deployed.stdout
    assert ready_of(run, "idle", "inspect") == "0/0 (scales from zero)"

"""``Confinement``: which host paths specs may name, from the API's own settings; and ``sandbox_for``."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion.api.confinement import Confinement, sandbox_for
from legion.api.settings import ApiSettings
from legion.core.errors import InvalidInputError
from legion.core.resources import parse_resource


@pytest.fixture
def places(tmp_path: Path) -> tuple[Path, Path]:
    """An allowed root with a model in it, and the platform's data directory next to it."""
    allowed, data = tmp_path / "allowed", tmp_path / "data"
    (allowed / "model").mkdir(parents=True)
    (data / "models" / "m-1").mkdir(parents=True)
    (data / "keys.json").write_text("{}")
    return allowed, data


def confinement(allowed: Path, data: Path, *roots: Path, images: bool = True) -> Confinement:
    settings = ApiSettings(data_dir=data, allowed_roots=[allowed, *roots])
    return Confinement.from_settings(settings, images=images)


def problems(confined: Confinement, kind: str, spec: dict[str, object]) -> dict[str, str]:
    return confined.problems(parse_resource({"kind": kind, "id": "x", "spec": spec}))


def test_paths_under_an_allowed_root_or_in_the_stores_pass(places: tuple[Path, Path]) -> None:
    allowed, data = places
    confined = confinement(allowed, data)
    assert problems(confined, "Connection", {"type": "local", "uri": str(allowed / "model")}) == {}
    assert problems(confined, "Connection", {"type": "local", "uri": f"file://{allowed}"}) == {}
    assert problems(confined, "ModelDeployment", {"image": str(allowed / "model")}) == {}
    assert problems(confined, "ModelDeployment", {"image": "models/m-1"}) == {}  # relative: in the data directory
    assert problems(confined, "ModelDeployment", {"image": str(data / "packages" / "p")}) == {}
    assert confined.check_path("path", str(allowed / "model")) == (allowed / "model").resolve()
    git = {"type": "git", "uri": "/anything/at/all.git"}
    assert problems(confined, "Connection", git) == {}  # a git URI is git's business


def test_the_platforms_data_and_paths_outside_the_roots_are_refused_naming_the_field(
    places: tuple[Path, Path], tmp_path: Path
) -> None:
    allowed, data = places
    confined = confinement(allowed, data, tmp_path)  # the data directory lies under an allowed root: still refused
    link = allowed / "innocent"
    link.symlink_to(data)
    for uri in (str(data), str(data / "keys.json"), str(link), f"{allowed}/../data", str(data / "runtime")):
        found = problems(confined, "Connection", {"type": "local", "uri": uri})
        assert list(found) == ["spec.uri"], uri
        assert "is in the platform's own data" in found["spec.uri"]
    training = {"model": {"name": "m", "version": "1"}, "toolchain": "python", "entrypoint": "t.py"}
    assert list(problems(confined, "ModelTraining", {**training, "localPath": str(data)})) == ["spec.localPath"]
    assert list(problems(confined, "ModelDeployment", {"image": "keys.json"})) == ["spec.image"]
    with pytest.raises(InvalidInputError) as refused:
        confined.check_path("path", str(link / "models" / ".." / "keys.json"))
    assert refused.value.fields == {"path": f"{link}/models/../keys.json is in the platform's own data; "
                                            "name a path under an allowed root"}  # fmt: skip

    narrow = confinement(allowed, data)
    found = problems(narrow, "Connection", {"type": "local", "uri": "/etc"})
    assert found["spec.uri"].startswith(f"/etc is not under an allowed root ({allowed.resolve()};")
    assert "LEGION_API_ALLOWED_ROOTS" in found["spec.uri"]


def test_images_are_not_paths_without_the_local_runtime(places: tuple[Path, Path]) -> None:
    allowed, data = places
    assert problems(confinement(allowed, data, images=False), "ModelDeployment", {"image": "registry/m:1"}) == {}


def test_the_runtimes_sandbox_hides_the_data_directory_and_the_database(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "legion.db"
    settings = ApiSettings(data_dir=tmp_path / "data", database_url=f"sqlite:///{database}")
    sandbox = sandbox_for(settings)
    assert sandbox.program == "bwrap"
    assert {tmp_path / "data", database.resolve(), Path.home() / ".legion"} <= set(sandbox.hidden)
    assert sandbox.shared == (tmp_path / "data" / "models", tmp_path / "data" / "packages")
    off = sandbox_for(ApiSettings(data_dir=tmp_path / "data", sandbox=False))
    assert off.program is None
    assert tmp_path / "data" in off.hidden  # the runtimes still copy nothing out of it

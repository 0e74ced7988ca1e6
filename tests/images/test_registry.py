"""Pushing to Debian's registry on loopback with htpasswd auth, the digest read back, and the OCI archive."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from legion.cli.main import cli
from legion.core.errors import InvalidInputError, UnauthorizedError
from legion.images import (
    BuiltImage,
    ContainerTools,
    Credentials,
    ImageRequest,
    ImageSettings,
    PushTarget,
    build_model_image,
    export_archive,
    push_image,
)
from tests.support.containers import Registry, requires_podman

pytestmark = requires_podman


@pytest.fixture(scope="module")
def registry_tools(image_settings: ImageSettings, registry: Registry) -> tuple[ContainerTools, ImageSettings]:
    """The adapter told that the loopback registry speaks plain HTTP."""
    settings = image_settings.model_copy(update={"insecure_registries": (registry.address,)})
    return ContainerTools(settings), settings


@pytest.fixture(scope="module")
def image(registry_tools: tuple[ContainerTools, ImageSettings], census_model_dir: Path) -> BuiltImage:
    tools, settings = registry_tools
    return build_model_image(tools, settings, ImageRequest(census_model_dir, "localhost/census-income:1.0"))


def remote_digest(tools: ContainerTools, registry: Registry, reference: str) -> str:
    shown = tools.skopeo("inspect", "--tls-verify=false", "--creds", f"{registry.username}:{registry.password}",
                         f"docker://{reference}", secrets=[registry.password]).stdout  # fmt: skip
    return str(json.loads(shown)["Digest"])


def test_push_with_credentials_reports_the_digest_the_registry_stored(
    registry_tools: tuple[ContainerTools, ImageSettings], image: BuiltImage, registry: Registry
) -> None:
    tools, _ = registry_tools
    target = PushTarget(f"{registry.address}/census-income:1.0", Credentials(registry.username, registry.password))
    pushed = push_image(tools, image.reference, target)
    assert pushed.digest.startswith("sha256:")
    assert remote_digest(tools, registry, target.reference) == pushed.digest
    assert pushed.pinned == f"{registry.address}/census-income@{pushed.digest}"
    assert registry.password not in repr(target)


def test_refused_credentials_are_unauthorized_and_never_shown(
    registry_tools: tuple[ContainerTools, ImageSettings], image: BuiltImage, registry: Registry
) -> None:
    tools, _ = registry_tools
    wrong = "not-the-password-4711"
    target = PushTarget(f"{registry.address}/census-income:bad", Credentials(registry.username, wrong))
    with pytest.raises(UnauthorizedError) as refused:
        push_image(tools, image.reference, target)
    assert wrong not in refused.value.detail
    without = PushTarget(f"{registry.address}/census-income:anonymous")
    with pytest.raises(UnauthorizedError):
        push_image(tools, image.reference, without)


def test_a_bad_reference_is_invalid_input(
    registry_tools: tuple[ContainerTools, ImageSettings], image: BuiltImage
) -> None:
    tools, _ = registry_tools
    with pytest.raises(InvalidInputError, match="not a valid image reference"):
        push_image(tools, image.reference, PushTarget("Not A/Reference"))


def test_export_writes_an_oci_archive_with_the_labels(
    registry_tools: tuple[ContainerTools, ImageSettings], image: BuiltImage, tmp_path: Path
) -> None:
    tools, _ = registry_tools
    archive = export_archive(tools, image.reference, tmp_path / "census.oci.tar")
    shown = json.loads(tools.skopeo("inspect", f"oci-archive:{archive}").stdout)
    assert shown["Labels"]["legion.model.name"] == "census-income"
    assert not (tmp_path / "census.oci.tar.partial").exists()


def test_cli_builds_pushes_and_prints_the_pinned_reference(
    image_settings: ImageSettings, image: BuiltImage, registry: Registry, census_model_dir: Path
) -> None:
    """``legion model image ... --push``: the password comes on stdin; the output is ``repo@digest``."""
    tools = ContainerTools(image_settings.model_copy(update={"insecure_registries": (registry.address,)}))
    tag = f"{registry.address}/census-cli:1.0"
    env = {"LEGION_IMAGES_STORAGE_DIR": str(image_settings.storage_dir),
           "LEGION_IMAGES_CACHE_DIR": str(image_settings.cache_dir)}  # fmt: skip
    result = CliRunner().invoke(
        cli,
        [
            "model",
            "image",
            str(census_model_dir),
            "--tag",
            tag,
            "--push",
            "--plain-http",
            "--username",
            registry.username,
            "--password-stdin",
        ],
        input=registry.password + "\n",
        env=env,
    )
    assert result.exit_code == 0, result.output
    pinned = result.stdout.strip().splitlines()[-1]
    repository, digest = pinned.split("@")
    assert repository == f"{registry.address}/census-cli"
    assert remote_digest(tools, registry, tag) == digest
    assert registry.password not in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tag", "Not A Reference"], "not a valid image reference"),
        (["--tag", "localhost/x:1", "--push", "--username", "someone"], "give both a registry user"),
    ],
)
def test_cli_refuses_bad_input_before_building(census_model_dir: Path, args: list[str], message: str) -> None:
    result = CliRunner().invoke(
        cli, ["model", "image", str(census_model_dir), *args], env={"LEGION_REGISTRY_PASSWORD": None}
    )
    assert result.exit_code == 2, result.output
    assert "Error:" in result.output and message in result.output

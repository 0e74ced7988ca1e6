"""The census model's image, built, inspected and run for real (podman, private storage, loopback only)."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tarfile
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from legion.cli.main import cli
from legion.images import BuiltImage, ContainerTools, ImageRequest, ImageSettings, build_model_image
from legion.images.base import INPUTS_LABEL
from legion.model.manifest import MANIFEST_NAME
from tests.support.containers import requires_podman
from tests.support.server import wait_until

pytestmark = requires_podman

ROOT = Path(__file__).resolve().parents[2]
REQUEST = json.loads((ROOT / "examples" / "census_income" / "request.json").read_text())
READY_DEADLINE_S = 90.0
STOP_TIMEOUT_S = 30


@pytest.fixture(scope="module")
def census_image(
    tools: ContainerTools, image_settings: ImageSettings, base_image: str, census_model_dir: Path
) -> BuiltImage:
    return build_model_image(tools, image_settings, ImageRequest(census_model_dir, "localhost/census-income:1.0"))


@pytest.fixture(scope="module")
def census_v2_image(
    tools: ContainerTools,
    image_settings: ImageSettings,
    census_image: BuiltImage,
    census_model_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> BuiltImage:
    """The same model saved as version 1.1: only its manifest differs."""
    model = tmp_path_factory.mktemp("census-v2") / "model"
    shutil.copytree(census_model_dir, model)
    manifest = model / MANIFEST_NAME
    manifest.write_text(manifest.read_text().replace("version: '1.0'", "version: '1.1'", 1))
    return build_model_image(tools, image_settings, ImageRequest(model, "localhost/census-income:1.1"))


def inspect(tools: ContainerTools, reference: str) -> dict:
    return json.loads(tools.podman("image", "inspect", reference).stdout)[0]


@pytest.fixture
def container(tools: ContainerTools, census_image: BuiltImage) -> Iterator[str]:
    """A container of the census image, its port published on 127.0.0.1 only (podman picks the host port)."""
    container_id = tools.podman("run", "--detach", "--publish", "127.0.0.1::5000", census_image.image_id).stdout.strip()
    try:
        yield container_id
    finally:
        tools.podman("rm", "--force", "--time", "0", container_id, check=False)


def published_url(tools: ContainerTools, container_id: str) -> str:
    mapping = tools.podman("port", container_id, "5000/tcp").stdout.strip()  # e.g. 127.0.0.1:40319
    assert mapping.startswith("127.0.0.1:"), mapping
    return f"http://{mapping}"


def test_the_container_serves_what_the_model_answers_in_process(
    tools: ContainerTools, container: str, census_model_dir: Path
) -> None:
    url = published_url(tools, container)

    def ready() -> bool:
        try:
            return httpx.get(f"{url}/healthcheck", timeout=2, trust_env=False).status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, READY_DEADLINE_S, "the model server in the container", interval_s=0.2)
    info = httpx.get(f"{url}/api/model/info", timeout=10, trust_env=False)
    assert info.status_code == 200
    assert info.json()["info"]["title"] == "census-income"
    answer = httpx.post(f"{url}/api/model/invoke", json=REQUEST, timeout=30, trust_env=False)
    assert answer.status_code == 200, answer.text
    local = CliRunner().invoke(cli, ["model", "test", str(census_model_dir), "--json", json.dumps(REQUEST)])
    assert local.exit_code == 0, local.output
    expected = json.loads(local.stdout)
    assert answer.json()["columns"] == expected["columns"]
    assert answer.json()["prediction"] == [pytest.approx(row, rel=1e-9) for row in expected["prediction"]]


def test_sigterm_stops_the_server_itself(tools: ContainerTools, container: str) -> None:
    """``podman stop`` sends STOPSIGNAL (SIGTERM); a server that ignored it would be killed (exit 137)."""
    url = published_url(tools, container)
    wait_until(lambda: _answers(f"{url}/healthcheck"), READY_DEADLINE_S, "the model server", interval_s=0.2)
    tools.podman("stop", "--time", str(STOP_TIMEOUT_S), container)
    state = json.loads(tools.podman("inspect", "--type", "container", container).stdout)[0]["State"]
    assert state["Status"] == "exited"
    assert state["ExitCode"] == 0


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2, trust_env=False).status_code == 200
    except httpx.TransportError:
        return False


def test_labels_user_port_and_stop_signal(tools: ContainerTools, census_image: BuiltImage, base_image: str) -> None:
    config = inspect(tools, census_image.image_id)["Config"]
    labels = config["Labels"]
    assert labels["legion.model.name"] == "census-income"
    assert labels["legion.model.version"] == "1.0"
    assert labels["legion.training.id"] == ""  # saved by a script, not by a training
    assert "legion.git.commit" in labels
    assert labels["org.opencontainers.image.title"] == "census-income"
    assert labels["org.opencontainers.image.version"] == "1.0"
    assert labels["org.opencontainers.image.base.name"] == base_image
    assert labels["org.opencontainers.image.created"].endswith("Z")
    assert INPUTS_LABEL in labels  # inherited from the base: which inputs made it
    assert config["User"] == "10001:10001"
    assert config["StopSignal"] == "SIGTERM"
    assert "5000/tcp" in config["ExposedPorts"]
    assert config["Entrypoint"][1:3] == ["serve", "/model"]
    whoami = tools.podman("run", "--rm", "--entrypoint", "id", census_image.image_id, "-u").stdout.strip()
    assert whoami == "10001"


def test_a_new_model_version_rebuilds_only_the_model_layer(
    tools: ContainerTools, census_image: BuiltImage, census_v2_image: BuiltImage
) -> None:
    first = inspect(tools, census_image.image_id)["RootFS"]["Layers"]
    second = inspect(tools, census_v2_image.image_id)["RootFS"]["Layers"]
    assert len(first) == len(second)
    assert first[:-1] == second[:-1]  # base, venv, requirements, Legion: from the cache
    assert first[-1] != second[-1]  # the model
    assert inspect(tools, census_v2_image.image_id)["Config"]["Labels"]["legion.model.version"] == "1.1"


def test_no_layer_holds_the_build_machines_ca_bundle_or_a_secret(
    tools: ContainerTools, census_image: BuiltImage, image_settings: ImageSettings, tmp_path: Path
) -> None:
    bundle = image_settings.pip_ca_bundle()
    assert bundle is not None, "this machine has a CA bundle; the build used it as a secret"
    bundle_hash = hashlib.sha256(bundle.read_bytes()).hexdigest()
    layout = tmp_path / "oci"
    tools.podman("save", "--format", "oci-dir", "--output", str(layout), census_image.image_id)
    layers = _layers(layout)
    assert len(layers) >= 5
    for layer in layers:
        with tarfile.open(layer) as archive:
            for member in archive:
                name = member.name.removeprefix("./")
                assert not (name.startswith("run/secrets/") and member.size > 0), name
                assert Path(name).name not in {"pip.conf", "auth.json", ".netrc", ".pypirc"}, name
                if member.isfile() and member.size == bundle.stat().st_size:
                    content = archive.extractfile(member)
                    assert content is not None
                    assert hashlib.sha256(content.read()).hexdigest() != bundle_hash, f"{name} is this machine's CA"


def _layers(layout: Path) -> list[Path]:
    index = json.loads((layout / "index.json").read_text())
    digest = index["manifests"][0]["digest"]
    manifest = json.loads(_blob(layout, digest).read_text())
    return [_blob(layout, layer["digest"]) for layer in manifest["layers"]]


def _blob(layout: Path, digest: str) -> Path:
    algorithm, value = digest.split(":", 1)
    return layout / "blobs" / algorithm / value


def test_the_image_carries_nothing_of_the_build_context(tools: ContainerTools, census_image: BuiltImage) -> None:
    """The venv has the model's pins; pip kept no cache; the Legion source build left no artefacts."""
    script = (
        "import importlib.metadata as m, os;"
        "print(m.version('scikit-learn'), m.version('legion'), os.path.exists(os.path.expanduser('~/.cache/pip')),"
        " os.path.exists('/opt/legion/src/build'), os.path.exists('/run/secrets/pipca'))"
    )
    shown = tools.podman("run", "--rm", "--entrypoint", "python", census_image.image_id, "-c", script).stdout.split()
    expected_sklearn = _manifest_requirement(census_image, tools, "scikit-learn")
    assert shown == [expected_sklearn, "0.1.0", "False", "False", "False"]


def _manifest_requirement(image: BuiltImage, tools: ContainerTools, name: str) -> str:
    text = tools.podman("run", "--rm", "--entrypoint", "cat", image.image_id, f"/model/{MANIFEST_NAME}").stdout
    import yaml

    return str(yaml.safe_load(text)["requirements"][name])


def test_a_model_path_without_a_manifest_is_refused_before_building(
    tools: ContainerTools, image_settings: ImageSettings, tmp_path: Path
) -> None:
    from legion.core.errors import ModelFormatError

    (tmp_path / "model").mkdir()
    with pytest.raises(ModelFormatError, match=r"legion\.model\.yaml"):
        build_model_image(tools, image_settings, ImageRequest(tmp_path / "model", "localhost/nothing:1"))
    assert os.listdir(tmp_path) == ["model"]

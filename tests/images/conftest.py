"""Fixtures of the image tests: private container storage, the cached base, built images, a loopback registry.

Everything runs the real tools (podman, skopeo, Debian's ``docker-registry``). The container storage is private to
the test session and removed at its end; the Debian base image is kept between sessions as an OCI archive in the
checkout's ``.cache/images`` (gitignored), so only the first session on a machine pays for debootstrap (~2 min).
Every image and container a test makes is removed by id. Without podman (or without root and no cached base) the
tests are skipped and say why; CI installs podman through ``scripts/setup.sh``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from legion.images import ContainerTools, ImageSettings
from legion.images.base import spec_for
from tests.support.containers import BASE_CACHE, WHY_NOT, Registry
from tests.support.server import wait_until

REGISTRY_DEADLINE_S = 30.0


@pytest.fixture(scope="session")
def image_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ImageSettings]:
    """Settings with a private storage for this session and the checkout's base cache."""
    if WHY_NOT is not None:
        pytest.skip(WHY_NOT)
    storage = tmp_path_factory.mktemp("containers")
    settings = ImageSettings(storage_dir=storage, cache_dir=BASE_CACHE)
    yield settings
    tools = ContainerTools(settings)
    for image_id in tools.podman("images", "--all", "--quiet", "--no-trunc").stdout.split():
        tools.podman("rmi", "--force", image_id, check=False)  # only this session's private storage holds them
    shutil.rmtree(storage, ignore_errors=True)


@pytest.fixture(scope="session")
def tools(image_settings: ImageSettings) -> ContainerTools:
    return ContainerTools(image_settings)


@pytest.fixture(scope="session")
def base_image(tools: ContainerTools, image_settings: ImageSettings) -> str:
    """Legion's Debian base in the session's storage (loaded from the cache, or built once)."""
    from legion.images.base import ensure_base

    return ensure_base(tools, image_settings, spec_for(image_settings))


def _bcrypt(password: str) -> str:
    # Debian's registry reads bcrypt htpasswd entries; libcrypt makes them. The crypt module warns on 3.11+
    # (deprecated), so it runs in a child interpreter where that warning is not an error.
    code = "import crypt, sys; print(crypt.crypt(sys.argv[1], crypt.mksalt(crypt.METHOD_BLOWFISH)))"
    done = subprocess.run([sys.executable, "-W", "ignore", "-c", code, password], capture_output=True, text=True,
                          check=True)  # fmt: skip
    return done.stdout.strip()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """Debian's registry on a loopback port it picks (``127.0.0.1:0``), reported in its log."""
    if WHY_NOT is not None:
        pytest.skip(WHY_NOT)
    home = tmp_path_factory.mktemp("registry")
    username, password = "legion", "s3cret-registry-pw"
    (home / "htpasswd").write_text(f"{username}:{_bcrypt(password)}\n")
    (home / "config.yml").write_text(
        "version: 0.1\n"
        "log: {level: info}\n"
        f"storage: {{filesystem: {{rootdirectory: {home / 'data'}}}}}\n"
        "http: {addr: '127.0.0.1:0'}\n"
        f"auth: {{htpasswd: {{realm: legion-test, path: {home / 'htpasswd'}}}}}\n"
    )
    process = subprocess.Popen(["docker-registry", "serve", str(home / "config.yml")], stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)  # fmt: skip
    found: list[str] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            match = re.search(r"listening on (127\.0\.0\.1:\d+)", line)
            if match and not found:
                found.append(match.group(1))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        wait_until(lambda: bool(found) or process.poll() is not None, REGISTRY_DEADLINE_S, "the registry's port")
        assert found, f"the registry exited ({process.returncode}) without listening"
        yield Registry(found[0], username, password)
    finally:
        process.terminate()
        process.wait(timeout=30)
        reader.join(timeout=5)
        if process.stdout is not None:
            process.stdout.close()
        shutil.rmtree(home, ignore_errors=True)  # the pushed layers

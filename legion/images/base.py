"""The Debian base image of every model image: built here with debootstrap, cached, never pulled.

No image can be pulled on the machines Legion is built on, so the base is made from Debian packages:
``debootstrap --variant=minbase`` with Python, venv and the CA certificates, trimmed of documentation and apt's
caches, imported with ``podman import``. Its tag is a hash of what decides its content (``BaseImageSpec``: the
suite, the package list, the trimming and import recipe), so it is rebuilt only when one of those changes. The
Debian mirror is read from this machine's apt sources at run time and is not part of the hash (any mirror of a
suite gives the same packages) nor of any committed file.

The built base is also saved as an OCI archive in the cache directory, so a fresh container storage (a test
session, a CI job) loads it in seconds instead of bootstrapping again.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Final

from legion.core.errors import ImageBuildError, UnavailableError
from legion.images.settings import ImageSettings
from legion.images.tools import ContainerTools, failure

RECIPE_VERSION: Final = 1
"""Bump when the way the base is made changes (what is trimmed, how it is imported)."""
PACKAGES: Final = ("python3", "python3-venv", "ca-certificates")
TRIMMED: Final = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale", "var/cache/apt/archives",
                  "var/lib/apt/lists")  # fmt: skip
IMPORT_CHANGES: Final = (
    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "ENV LANG=C.UTF-8",
)
PYTHON_LABEL: Final = "legion.base.python"
INPUTS_LABEL: Final = "legion.base.inputs"
REPOSITORY: Final = "localhost/legion-base"


@dataclass(frozen=True)
class BaseImageSpec:
    """What decides the base image's content; its hash is the image's tag."""

    suite: str
    packages: tuple[str, ...] = PACKAGES
    variant: str = "minbase"
    recipe: int = RECIPE_VERSION

    @property
    def inputs_hash(self) -> str:
        canonical = json.dumps({**asdict(self), "trimmed": TRIMMED, "changes": IMPORT_CHANGES}, sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()

    @property
    def reference(self) -> str:
        return f"{REPOSITORY}:{self.suite}-{self.inputs_hash[:16]}"


def spec_for(settings: ImageSettings) -> BaseImageSpec:
    """The base this machine builds: its Debian release unless the settings name another."""
    return BaseImageSpec(suite=settings.debian_suite or this_suite())


def this_suite(os_release: Path = Path("/etc/os-release")) -> str:
    """``VERSION_CODENAME`` of this machine (e.g. ``bookworm``)."""
    try:
        text = os_release.read_text(encoding="utf-8")
    except OSError:
        text = ""
    found = re.search(r"^VERSION_CODENAME=\"?([a-z]+)\"?$", text, re.M)
    if not found:
        raise UnavailableError("cannot tell this machine's Debian release; set LEGION_IMAGES_DEBIAN_SUITE")
    return found.group(1)


def debian_mirror(sources: tuple[Path, ...], suite: str) -> str:
    """The first mirror in these apt sources (one-line ``deb`` lines or deb822 stanzas) that serves ``suite``."""
    files: list[Path] = []
    for source in sources:
        if source.is_dir():
            files += sorted(p for p in source.iterdir() if p.suffix in {".list", ".sources"})
        elif source.is_file():
            files.append(source)
    for path in files:
        text = path.read_text(encoding="utf-8", errors="replace")
        for uri, suites in _entries(text):
            if suite in suites and uri.startswith(("http://", "https://")):
                return uri.rstrip("/")
    raise UnavailableError(
        f"no Debian mirror for {suite} in {', '.join(str(s) for s in sources)}; set LEGION_IMAGES_DEBIAN_MIRROR"
    )


def _entries(text: str) -> list[tuple[str, list[str]]]:
    entries: list[tuple[str, list[str]]] = []
    for line in text.splitlines():  # one-line style: deb [options] URI SUITE COMPONENTS...
        words = re.sub(r"\[[^]]*\]", " ", line.split("#", 1)[0]).split()
        if len(words) >= 3 and words[0] == "deb":
            entries.append((words[1], [words[2]]))
    for stanza in re.split(r"\n\s*\n", text):  # deb822 style
        fields = dict(re.findall(r"^([A-Za-z-]+):\s*(.*)$", stanza, re.M))
        if "deb" in fields.get("Types", "").split() and fields.get("Enabled", "yes") != "no":
            entries += [(uri, fields.get("Suites", "").split()) for uri in fields.get("URIs", "").split()]
    return entries


def ensure_base(tools: ContainerTools, settings: ImageSettings, spec: BaseImageSpec | None = None) -> str:
    """The reference of the base image in the tools' storage: already there, loaded from the cache, or built."""
    spec = spec or spec_for(settings)
    reference = spec.reference
    if _exists(tools, reference):
        return reference
    archive = settings.cache_dir / f"legion-base-{spec.suite}-{spec.inputs_hash[:16]}.oci.tar"
    if not archive.is_file():
        _build_archive(tools, settings, spec, archive)
    tools.podman("load", "--quiet", "--input", str(archive))
    if not _exists(tools, reference):
        raise ImageBuildError(f"{archive} did not hold {reference}; delete it to build the base again")
    return reference


def base_python(tools: ContainerTools, reference: str) -> str | None:
    """``major.minor`` of the Python in a base image Legion built (its label), else None."""
    labels = tools.podman("image", "inspect", "--format", "{{json .Labels}}", reference).stdout
    value = (json.loads(labels) or {}).get(PYTHON_LABEL)
    return str(value) if value else None


def _exists(tools: ContainerTools, reference: str) -> bool:
    return tools.podman("image", "exists", reference, check=False).returncode == 0


def _build_archive(tools: ContainerTools, settings: ImageSettings, spec: BaseImageSpec, archive: Path) -> None:
    if shutil.which("debootstrap") is None:
        raise UnavailableError("building the base image needs debootstrap (Debian: apt-get install debootstrap)")
    if os.geteuid() != 0:
        raise UnavailableError("building the base image runs debootstrap, which needs root; or give --base-image")
    mirror = settings.debian_mirror or debian_mirror(settings.apt_sources, spec.suite)
    settings.cache_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="legion-base-", dir=settings.cache_dir) as scratch:
        rootfs = Path(scratch) / "rootfs"
        command = ["debootstrap", f"--variant={spec.variant}", f"--include={','.join(spec.packages)}",
                   spec.suite, str(rootfs), mirror]  # fmt: skip
        done = subprocess.run(command, capture_output=True, text=True, timeout=settings.timeout_s, check=False)
        if done.returncode != 0:
            raise failure(" ".join(command), done.returncode, done.stdout + done.stderr)
        for trimmed in TRIMMED:
            target = rootfs / trimmed
            if target.is_dir():
                for child in target.iterdir():
                    if child.is_dir() and not child.is_symlink():
                        shutil.rmtree(child)
                    else:
                        child.unlink()
        python = _python_of(rootfs)
        changes = [*IMPORT_CHANGES, f"LABEL {INPUTS_LABEL}={spec.inputs_hash}", f"LABEL {PYTHON_LABEL}={python}"]
        tar = subprocess.Popen(["tar", "-C", str(rootfs), "--numeric-owner", "-c", "."], stdout=subprocess.PIPE)
        assert tar.stdout is not None
        try:
            args = [arg for change in changes for arg in ("--change", change)]
            tools.podman("import", "--quiet", *args, "-", spec.reference, stdin=tar.stdout.fileno())
        finally:
            tar.stdout.close()
            tar.wait()
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        tools.podman("save", "--quiet", "--format", "oci-archive", "--output", str(partial), spec.reference)
        partial.replace(archive)


def _python_of(rootfs: Path) -> str:
    versions = sorted(p.name.removeprefix("python") for p in (rootfs / "usr" / "lib").glob("python3.*") if p.is_dir())
    if not versions:
        raise ImageBuildError(f"debootstrap made no Python in {rootfs}")
    return versions[-1]

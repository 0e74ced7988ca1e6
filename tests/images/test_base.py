"""The base image's inputs: its tag follows them, and the mirror comes from this machine's apt sources."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion.core.errors import UnavailableError
from legion.images.base import BaseImageSpec, debian_mirror, this_suite

DEB822 = """\
Types: deb
URIs: http://mirror.invalid/debian-security
Suites: bookworm-security
Components: main

Types: deb
# a comment
URIs: http://mirror.invalid/debian
Suites: bookworm bookworm-updates
Components: main
"""


def test_the_tag_is_a_hash_of_the_inputs() -> None:
    spec = BaseImageSpec(suite="bookworm")
    assert spec.reference == BaseImageSpec(suite="bookworm").reference
    assert spec.reference.startswith("localhost/legion-base:bookworm-")
    assert BaseImageSpec(suite="bookworm", packages=("python3",)).reference != spec.reference
    assert BaseImageSpec(suite="trixie").reference != spec.reference
    assert BaseImageSpec(suite="bookworm", recipe=spec.recipe + 1).reference != spec.reference


def test_the_mirror_of_the_suite_from_deb822_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list.d").mkdir()
    (tmp_path / "sources.list.d" / "debian.sources").write_text(DEB822)
    assert debian_mirror((tmp_path / "sources.list", tmp_path / "sources.list.d"), "bookworm") == (
        "http://mirror.invalid/debian"
    )


def test_the_mirror_from_one_line_sources(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text(
        "# deb http://commented.invalid/debian bookworm main\n"
        "deb [signed-by=/usr/share/keyrings/x.gpg] http://mirror.invalid/debian/ bookworm main\n"
    )
    assert debian_mirror((tmp_path / "sources.list",), "bookworm") == "http://mirror.invalid/debian"


def test_no_mirror_for_the_suite_says_what_to_set(tmp_path: Path) -> None:
    (tmp_path / "sources.list").write_text("deb http://mirror.invalid/debian trixie main\n")
    with pytest.raises(UnavailableError, match="LEGION_IMAGES_DEBIAN_MIRROR"):
        debian_mirror((tmp_path / "sources.list",), "bookworm")


def test_the_suite_of_this_machine(tmp_path: Path) -> None:
    (tmp_path / "os-release").write_text('NAME="Debian GNU/Linux"\nVERSION_CODENAME=bookworm\n')
    assert this_suite(tmp_path / "os-release") == "bookworm"
    (tmp_path / "os-release").write_text('NAME="Something"\n')
    with pytest.raises(UnavailableError, match="LEGION_IMAGES_DEBIAN_SUITE"):
        this_suite(tmp_path / "os-release")

"""The management API's OpenAPI document says what the server does: self-contained, every error answer declared as
``application/problem+json``, and schemathesis (all checks, bounded examples, deterministic) finds no 5xx and no
drift between the document and the answers, with a token of each role."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.api.conftest import Api, cli_token, start_api
from tests.support.server import ServerProcess

CONFIG = Path(__file__).with_name("schemathesis.toml")
METHODS = ("get", "put", "post", "delete", "patch")


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield method.upper(), path, operation


def test_the_document_is_self_contained(api: Api) -> None:
    document = httpx.get(f"{api.url}/openapi.json").json()
    text = json.dumps(document)
    assert "#/$defs/" not in text and '"$defs"' not in text
    schemas = document["components"]["schemas"]
    for reference in {part.split('"')[0] for part in text.split('"$ref": "#/components/schemas/')[1:]}:
        assert reference in schemas, reference


def test_every_error_answer_is_declared_as_a_problem(api: Api) -> None:
    document = httpx.get(f"{api.url}/openapi.json").json()
    for method, path, operation in operations(document):
        answers = operation["responses"]
        if path != "/health":
            assert {"401", "403"} <= set(answers), (method, path)
            assert operation["security"] == [{"bearer": []}]
            assert all(p["name"].lower() != "authorization" for p in operation.get("parameters", []))
        if "{" in path:
            assert "404" in answers, (method, path)
        if "requestBody" in operation:
            assert {"400", "413", "422"} <= set(answers), (method, path)
        for status, answer in answers.items():
            if int(status) >= 400:
                assert list(answer["content"]) == ["application/problem+json"], (method, path, status)
    listing = document["paths"]["/api/v1/model/route"]["get"]["parameters"]
    assert {p["name"]: p["schema"].get("maximum") for p in listing}["page"] == 10**9


# Resource documents are YAML-friendly as kubectl's are: a number where text is expected, or 0/1 for a boolean, is
# taken (``legion.core.resources.base.WireModel``), so "a value of the wrong JSON type is refused" is not a promise
# of these operations: their writes run every check but that one, every other operation runs all of them.
RESOURCE_WRITES = (
    r"^/api/v1/(connection|toolchain/integration|packaging/integration|model/(training|packaging|deployment|route))"
    r"(/\{resource_id\})?$"
)


def schemathesis(server: ServerProcess, token: str, workdir: Path, *options: str) -> subprocess.CompletedProcess[str]:
    """``st run`` over the live document: 5 examples an operation, the same cases every run. One worker: with more,
    CPython 3.11's AST validator (which hypothesis calls to describe strategies) can fail with a SystemError in a
    thread race, an error of the fuzzer rather than of the API."""
    command = [str(Path(sys.executable).with_name("st")), "--config-file", str(CONFIG), "--no-color", "run",
               f"{server.url}/openapi.json", "--max-examples", "5", "--generation-deterministic",
               "--header", f"Authorization: Bearer {token}", "--workers", "1", "--request-timeout", "30",
               *options]  # fmt: skip
    return subprocess.run(command, capture_output=True, text=True, timeout=600, check=False, cwd=workdir)


def passes(server: ServerProcess, token: str, workdir: Path, *options: str) -> None:
    """Every operation but the resource writes with all checks, then the writes with all checks but one."""
    writes = "^(POST|PUT)$"
    for scope in (["--checks", "all", "--exclude-path-regex", RESOURCE_WRITES, "--exclude-method-regex", writes],
                  ["--checks", "all", "--exclude-checks", "negative_data_rejection",
                   "--include-path-regex", RESOURCE_WRITES, "--include-method-regex", writes]):  # fmt: skip
        done = schemathesis(server, token, workdir, *scope, *options)
        assert done.returncode == 0, done.stdout[-20000:] + done.stderr[-2000:]


@pytest.fixture
def fuzzed(tmp_path: Path) -> Iterator[ServerProcess]:
    server = start_api(tmp_path, "--runtime", "none")
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.timeout(900)
def test_schemathesis_finds_no_server_error_and_no_drift_as_an_admin(fuzzed: ServerProcess, tmp_path: Path) -> None:
    passes(fuzzed, cli_token(tmp_path, "admin"), tmp_path)


@pytest.mark.timeout(900)
@pytest.mark.parametrize("role", ["viewer", "data-scientist"])
def test_schemathesis_finds_no_drift_for_the_other_roles(fuzzed: ServerProcess, tmp_path: Path, role: str) -> None:
    """A role that may not write gets 403s the document declares; the coverage phase reaches every operation."""
    passes(fuzzed, cli_token(tmp_path, role), tmp_path, "--phases", "coverage")

"""CLI output: tables for people; YAML, JSON and kubectl-style jsonpath for scripts; contexts resolution."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from legion.cli.config import ClientSettings, Context, resolve, save_context
from legion.cli.output import jsonpath, render
from legion.core.errors import InvalidInputError

OBJECTS: list[dict[str, Any]] = [
    {"kind": "ModelDeployment", "id": "census", "spec": {"image": "a", "minReplicas": 2}, "status": {"state": "Ready"}},
    {
        "kind": "ModelDeployment",
        "id": "digits",
        "spec": {"image": "b", "minReplicas": 1},
        "status": {"state": "Failed"},
    },
]
COLUMNS = [("ID", lambda o: o["id"]), ("STATE", lambda o: o["status"]["state"])]


def printed(fmt: str, *, single: bool = False) -> str:
    lines: list[str] = []
    render(OBJECTS[:1] if single else OBJECTS, fmt, COLUMNS, lines.append, single=single)
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("{.items[*].id}", ["census", "digits"]),
        ("{.items[1].status.state}", ["Failed"]),
        (".items[*].spec.minReplicas", [2, 1]),
        ("{.items[5].id}", []),
        ("{.items[*].nothing}", []),
        ("{}", [{"items": OBJECTS}]),
    ],
)
def test_jsonpath_subset(expression: str, expected: list[Any]) -> None:
    assert jsonpath({"items": OBJECTS}, expression) == expected


def test_jsonpath_refuses_what_it_cannot_read() -> None:
    with pytest.raises(InvalidInputError, match="cannot read jsonpath"):
        jsonpath({}, "{.items[?(@.id)]}")


def test_formats() -> None:
    table = printed("table").splitlines()
    assert table[0].split() == ["ID", "STATE"]
    assert table[1].split() == ["census", "Ready"]
    assert json.loads(printed("json")) == OBJECTS
    assert list(yaml.safe_load_all(printed("yaml"))) == OBJECTS
    assert yaml.safe_load(printed("yaml", single=True)) == OBJECTS[0]
    assert printed("jsonpath={.items[*].id}") == "census digits"
    assert printed("jsonpath={.spec.image}", single=True) == "a"
    with pytest.raises(InvalidInputError, match="unknown output format"):
        printed("xml")


def test_contexts_resolve_file_then_environment(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    save_context(config, "laptop", Context("http://127.0.0.1:1111", "tok-1"))
    save_context(config, "prod", Context("http://127.0.0.1:2222", "tok-2"))
    assert config.stat().st_mode & 0o777 == 0o600  # tokens inside
    assert resolve(ClientSettings(config_file=config)).url == "http://127.0.0.1:2222"
    chosen = resolve(ClientSettings(config_file=config, context="laptop"))
    assert (chosen.url, chosen.token) == ("http://127.0.0.1:1111", "tok-1")
    overridden = resolve(ClientSettings(config_file=config, api_url="http://127.0.0.1:3333", api_token="tok-3"))
    assert (overridden.url, overridden.token) == ("http://127.0.0.1:3333", "tok-3")
    with pytest.raises(InvalidInputError, match="no context 'nope'"):
        resolve(ClientSettings(config_file=config, context="nope"))

"""``legion config``: view (gateway shown, tokens masked), use-context, get and set on a contexts file in the test's
own directory, run in process through Click's runner; and the context ``legion up`` saves for a platform, which
becomes current only when asked or when none is."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner, Result

from legion.cli.config import Context, read_config
from legion.cli.main import cli
from legion.cli.up import LocalPlatform, save_platform_context

TOKEN = "eyJ.secret.token"


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    contexts = {
        "laptop": {"url": "http://127.0.0.1:5080", "token": TOKEN, "gateway": "http://127.0.0.1:5090"},
        "staging": {"url": "https://legion.staging.example"},
    }
    path.write_text(yaml.safe_dump({"current": "laptop", "contexts": contexts}))
    return path


def legion(config_file: Path, *args: str, stdin: str | None = None) -> Result:
    return CliRunner(env={"LEGION_CONFIG_FILE": str(config_file)}).invoke(cli, list(args), input=stdin)


def test_view_shows_each_contexts_api_and_gateway_urls_and_masks_the_tokens(config_file: Path) -> None:
    view = legion(config_file, "config", "view")
    assert view.exit_code == 0, view.output
    lines = view.stdout.splitlines()
    assert lines[0].split() == ["CURRENT", "NAME", "URL", "GATEWAY", "TOKEN"]
    assert lines[1].split() == ["*", "laptop", "http://127.0.0.1:5080", "http://127.0.0.1:5090", "*****"]
    assert lines[2].split() == ["staging", "https://legion.staging.example", "none"]
    as_json = legion(config_file, "config", "view", "-o", "json")
    assert as_json.exit_code == 0, as_json.output
    assert TOKEN not in as_json.stdout
    assert json.loads(as_json.stdout)[0] == {"name": "laptop", "current": True, "url": "http://127.0.0.1:5080",
                                             "gateway": "http://127.0.0.1:5090", "token": "*****"}  # fmt: skip


def test_get_prints_a_key_of_the_current_context(config_file: Path) -> None:
    for key, value in [("url", "http://127.0.0.1:5080"), ("gateway", "http://127.0.0.1:5090"), ("token", TOKEN)]:
        got = legion(config_file, "config", "get", key)
        assert (got.exit_code, got.stdout) == (0, value + "\n"), got.output
    other = legion(config_file, "config", "get", "url", "--context", "staging")
    assert other.stdout == "https://legion.staging.example\n"
    unset = legion(config_file, "config", "get", "gateway", "--context", "staging")
    assert unset.exit_code == 3
    assert "context 'staging' has no gateway" in unset.output


def test_set_changes_a_key_of_the_current_context_and_nothing_else(config_file: Path) -> None:
    done = legion(config_file, "config", "set", "gateway", "http://127.0.0.1:6090/")
    assert done.exit_code == 0, done.output
    assert legion(config_file, "config", "get", "gateway").stdout == "http://127.0.0.1:6090\n"
    assert legion(config_file, "config", "set", "token", "-", stdin="new.token.value\n").exit_code == 0
    data = read_config(config_file)
    assert data["contexts"]["laptop"] == {"url": "http://127.0.0.1:5080", "token": "new.token.value",
                                          "gateway": "http://127.0.0.1:6090"}  # fmt: skip
    assert data["contexts"]["staging"] == {"url": "https://legion.staging.example"}
    assert data["current"] == "laptop"
    assert legion(config_file, "config", "set", "url", "http://10.0.0.1:5080", "--context", "staging").exit_code == 0
    assert read_config(config_file)["contexts"]["staging"]["url"] == "http://10.0.0.1:5080"


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["get", "tokn"], 2, "unknown config key 'tokn'; known keys: url ("),
        (["set", "gateway-url", "http://x"], 2, "unknown config key 'gateway-url'"),
        (["set", "url", "127.0.0.1:5080"], 2, "url must be an http:// or https:// URL, not '127.0.0.1:5080'"),
        (["set", "token", ""], 2, "token may not be empty"),
        (["get", "url", "--context", "nope"], 3, "no context 'nope'"),
        (["use-context", "nope"], 2, "no context 'nope'; known: laptop, staging"),
    ],
)
def test_a_bad_key_value_or_context_is_an_error_naming_it(
    config_file: Path, args: list[str], code: int, message: str
) -> None:
    before = config_file.read_text()
    result = legion(config_file, "config", *args)
    assert result.exit_code == code, result.output
    assert f"Error: {message}" in result.output
    assert "Traceback" not in result.output
    assert config_file.read_text() == before


def test_without_a_current_context_get_and_set_say_how_to_get_one(tmp_path: Path) -> None:
    result = legion(tmp_path / "none.yaml", "config", "set", "url", "http://127.0.0.1:5080")
    assert result.exit_code == 3
    assert "no current context" in result.output and "legion config use-context NAME" in result.output
    assert not (tmp_path / "none.yaml").exists()


def test_use_context_switches_and_use_is_still_understood(config_file: Path) -> None:
    assert legion(config_file, "config", "use-context", "staging").exit_code == 0
    assert read_config(config_file)["current"] == "staging"
    assert legion(config_file, "config", "get", "url").stdout == "https://legion.staging.example\n"
    assert legion(config_file, "config", "use", "laptop").exit_code == 0
    assert read_config(config_file)["current"] == "laptop"


def platform_context(path: Path, data_dir: Path, **options: object) -> str:
    platform = LocalPlatform(data_dir=data_dir, **options)  # type: ignore[arg-type]  # the options' own types
    return save_platform_context(path, platform, Context("http://127.0.0.1:1", "t", "http://127.0.0.1:2"))


def test_a_platform_context_leaves_another_current_context_alone(config_file: Path, tmp_path: Path) -> None:
    said = platform_context(config_file, tmp_path / "second")
    assert said == ("CLI context 'local-second' saved; the current context stays 'laptop' "
                    "(switch with: legion config use-context local-second)")  # fmt: skip
    data = read_config(config_file)
    assert data["current"] == "laptop"
    assert data["contexts"]["laptop"]["url"] == "http://127.0.0.1:5080"
    assert data["contexts"]["local-second"] == {"url": "http://127.0.0.1:1", "token": "t",
                                                "gateway": "http://127.0.0.1:2",
                                                "dataDir": str((tmp_path / "second").resolve())}  # fmt: skip
    assert legion(config_file, "config", "use-context", "local-second").exit_code == 0  # as the message says


def test_a_platform_context_is_current_when_asked_or_when_none_is(config_file: Path, tmp_path: Path) -> None:
    said = platform_context(config_file, tmp_path / "second", use_context=True, context="mine")
    assert said == "CLI context 'mine' saved and current"
    assert read_config(config_file)["current"] == "mine"
    fresh = tmp_path / "fresh.yaml"
    assert platform_context(fresh, tmp_path / "second") == "CLI context 'local-second' saved and current"
    assert read_config(fresh)["current"] == "local-second"
    # the same platform again (new ports): its context is updated and stays current
    assert platform_context(fresh, tmp_path / "second") == "CLI context 'local-second' saved and current"
    assert list(read_config(fresh)["contexts"]) == ["local-second"]


def test_two_data_directories_of_the_same_name_get_two_contexts(tmp_path: Path) -> None:
    path = tmp_path / "config.yaml"
    platform_context(path, tmp_path / "a" / "legion")
    assert "'local-legion-2' saved;" in platform_context(path, tmp_path / "b" / "legion")
    contexts = read_config(path)["contexts"]
    assert contexts["local-legion"]["dataDir"] == str((tmp_path / "a" / "legion").resolve())
    assert contexts["local-legion-2"]["dataDir"] == str((tmp_path / "b" / "legion").resolve())


def test_the_default_data_directory_is_the_local_context(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = tmp_path / "config.yaml"
    assert platform_context(path, tmp_path / "home" / ".legion") == "CLI context 'local' saved and current"

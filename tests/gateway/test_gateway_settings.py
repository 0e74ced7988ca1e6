"""``GatewaySettings`` groups its fields (routing, tokens, upstream, records) and still takes every documented flat
name, as a variable (``LEGION_GATEWAY_LOG_S3_BUCKET``) and as a keyword (the CLI's options)."""

from __future__ import annotations

from pathlib import Path

import pytest

from legion.cli.gateway_cmd import gateway, in_data_dir
from legion.gateway.settings import FLAT_NAMES, GatewaySettings


def test_documented_flat_variables_land_in_their_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "LEGION_GATEWAY_TOKEN_SECRET": "s3cret",
        "LEGION_GATEWAY_COLD_START_TIMEOUT_S": "0.5",
        "LEGION_GATEWAY_POLL_WAIT_S": "2",
        "LEGION_GATEWAY_LOG_SINK": "fluentd",
        "LEGION_GATEWAY_LOG_FLUENTD_PORT": "24225",
        "LEGION_GATEWAY_LOG_S3_BUCKET": "logs",
        "LEGION_GATEWAY_LOG_S3_KEY_SECRET": "key",
        "LEGION_GATEWAY_LOG_BUFFER_MAX_BYTES": str(1 << 20),
        "LEGION_GATEWAY_ACCESS_LOG": "false",
    }.items():
        monkeypatch.setenv(name, value)
    settings = GatewaySettings()
    assert settings.hs256_secret() == "s3cret"
    assert settings.upstream.cold_start_timeout_s == 0.5
    assert settings.routing.poll_wait_s == 2
    assert (settings.records.sink, settings.records.fluentd.port) == ("fluentd", 24225)
    assert settings.records.s3.bucket == "logs"
    assert settings.records.s3.key_secret is not None
    assert settings.records.s3.key_secret.get_secret_value() == "key"
    assert settings.records.buffer_max_bytes == 1 << 20
    assert settings.access_log is False


def test_nested_variables_set_a_group_and_win_over_the_flat_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_GATEWAY_UPSTREAM__COLD_START_TIMEOUT_S", "9")
    monkeypatch.setenv("LEGION_GATEWAY_COLD_START_TIMEOUT_S", "0.5")
    monkeypatch.setenv("LEGION_GATEWAY_RECORDS__S3__PREFIX", "legion")
    settings = GatewaySettings()
    assert settings.upstream.cold_start_timeout_s == 9
    assert settings.records.s3.prefix == "legion"


def test_keywords_win_over_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEGION_GATEWAY_LOG_DIR", "/from/the/environment")
    settings = GatewaySettings(log_dir=Path("/given"), auth=False, upstream_timeout_s=3, prediction_log=False)
    assert settings.records.dir == Path("/given")
    assert (settings.tokens.enabled, settings.upstream.timeout_s, settings.records.enabled) == (False, 3, False)


def test_every_gateway_option_names_a_setting() -> None:
    # the command hands its options over by name; a name the settings do not know would be dropped silently
    inverted = {"no_auth", "no_prediction_log"}
    names = {param.name for param in gateway.params} - inverted - {"data_dir"}
    assert names <= set(FLAT_NAMES) | set(GatewaySettings.model_fields)
    assert set(in_data_dir(Path("x"))) <= names  # --data-dir stands for options of its own
    assert {"auth", "prediction_log"} <= set(FLAT_NAMES)


def test_the_home_directory_is_read_when_settings_are_built(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert GatewaySettings().records.dir == tmp_path / ".legion" / "logs"

"""Log lines: JSON for machines (one object a line, uvicorn's included), text for people."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import httpx
import pytest

from legion.core.logs import JSONFormatter
from tests.serving.toy_models import save_toy
from tests.support.server import ServerProcess, wait_until


def test_json_formatter_writes_one_object_with_the_exception() -> None:
    try:
        raise ValueError("boom")
    except ValueError:
        record = logging.LogRecord("legion.x", logging.ERROR, __file__, 1, "failed %s", ("here",), exc_info=True)
        import sys

        record.exc_info = sys.exc_info()
    entry = json.loads(JSONFormatter().format(record))
    assert entry["level"] == "error"
    assert entry["logger"] == "legion.x"
    assert entry["message"] == "failed here"
    assert "ValueError: boom" in entry["exception"]


@pytest.mark.slow
def test_server_logs_are_json_lines_when_asked(tmp_path: Path) -> None:
    server = ServerProcess(save_toy(tmp_path / "model"), global_args=["--log-format", "json"])
    try:
        server.wait_ready()
        httpx.post(f"{server.url}/api/model/invoke", json={"columns": ["a", "b", "s"], "data": [[13, 1.0, "x"]]})
        wait_until(lambda: "loaded with endpoints" in server.stderr, 30, "the load to be logged")
    finally:
        server.stop()
    entries = [json.loads(line) for line in server.stderr.splitlines() if line.strip()]
    loggers = {e["logger"] for e in entries}
    assert "legion.serving.dataplane" in loggers
    assert any(name.startswith("uvicorn") for name in loggers)  # uvicorn's lines in the same format

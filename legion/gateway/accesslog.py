"""One structured access-log line per request, written straight to standard error.

The line is a JSON object in the shape of ``legion.core.logs``' JSON lines (``time``, ``level``, ``logger``)
plus the request's fields. It carries the path without its query string, never a header value other than the
request id, and never a body, so no token, secret or model input reaches the log. It bypasses ``logging``
because the gateway's whole latency budget is half a millisecond and a ``logging`` record costs a good part of it.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson


class AccessLog:
    """Writes entries to ``stream`` (standard error by default), one JSON object a line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream

    def write(self, entry: dict[str, Any]) -> None:
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "info",
            "logger": "legion.gateway.access",
            **entry,
        }
        stream = self._stream or sys.stderr
        stream.write(orjson.dumps(line).decode() + "\n")

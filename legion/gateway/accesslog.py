"""One structured access-log line per request, written to standard error in one write per event-loop turn.

The line is a JSON object in the shape of ``legion.core.logs``' JSON lines (``time``, ``level``, ``logger``)
plus the request's fields. It carries the path without its query string, never a header value other than the
request id, and never a body, so no token, secret or model input reaches the log. It bypasses ``logging``
because the gateway's whole latency budget is half a millisecond and a ``logging`` record costs a good part of it.

Lines written during one turn of the event loop are kept and written together at the end of that turn
(``loop.call_soon``): under load many requests finish in the same turn, and one ``write`` system call per line
was a measurable share of the gateway's CPU time (``benchmarks/gateway.py``). A line is therefore out within
one turn of the loop; outside a running loop it is written at once.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson


class AccessLog:
    """Writes entries to ``stream`` (standard error by default), one JSON object a line."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self._stream = stream
        self._kept: list[str] = []

    def write(self, entry: dict[str, Any]) -> None:
        line = {
            "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "level": "info",
            "logger": "legion.gateway.access",
            **entry,
        }
        if not self._kept:
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no running loop: nothing would flush later
                self._kept.append(orjson.dumps(line).decode())
                self.flush()
                return
        self._kept.append(orjson.dumps(line).decode())

    def flush(self) -> None:
        """Write the kept lines now."""
        if not self._kept:
            return
        kept, self._kept = self._kept, []
        stream = self._stream or sys.stderr
        stream.write("\n".join(kept) + "\n")
        stream.flush()

"""Where records go: the ``Sink`` protocol and the local directory sink in Legion's layout.

``deliver(records)`` returns once the sink holds the records (durably, as far as the sink can say) or raises;
the shipper retries a failed batch, so a sink must accept a batch it has seen before (duplicates are allowed,
losses are not).

Legion's layout, kept so that existing downstream jobs keep working::

    model_log/<tag>/<model>/<version>/year=YYYY/month=MM/day=DD/<YYYYmmddHH>_<i>.json    (JSON lines)

``<i>`` is the writer's number (``writer``), so several shippers never write the same file.
"""

from __future__ import annotations

import os
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson


class Sink(Protocol):
    name: str

    def deliver(self, records: list[dict[str, Any]]) -> None:
        """Take the records, or raise (the batch will come again)."""
        ...


def record_key(record: dict[str, Any], writer: int) -> str:
    """The path of a record in Legion's layout, relative to the sink's root."""
    moment = _moment(record.get("time"))
    return (
        f"model_log/{record.get('tag', 'unknown')}/{record.get('model_name') or 'unknown'}/"
        f"{record.get('model_version') or 'unknown'}/year={moment:%Y}/month={moment:%m}/day={moment:%d}/"
        f"{moment:%Y%m%d%H}_{writer}.json"
    )


def _moment(value: Any) -> datetime:
    if isinstance(value, str):
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return datetime.now(UTC)
        return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime.now(UTC)


class LocalSink:
    """JSON-lines files under ``root`` in Legion's layout; each batch is appended and fsynced."""

    name = "local"

    def __init__(self, root: Path, writer: int = 0) -> None:
        self.root = root
        self.writer = writer

    def deliver(self, records: list[dict[str, Any]]) -> None:
        grouped: dict[str, list[bytes]] = defaultdict(list)
        for record in records:
            grouped[record_key(record, self.writer)].append(orjson.dumps(record) + b"\n")
        for key, lines in grouped.items():
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(descriptor, b"".join(lines))
                os.fsync(descriptor)
            finally:
                os.close(descriptor)

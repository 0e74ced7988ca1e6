"""Where records go: the ``Sink`` protocol and the local directory sink in Legion's layout.

``deliver(records)`` returns once the sink holds the records (durably, as far as the sink can say) or raises;
the shipper retries a failed batch, so a sink must accept a batch it has seen before (duplicates are allowed,
losses are not).

Legion's layout, kept so that existing downstream jobs keep working::

    model_log/<tag>/<model>/<version>/year=YYYY/month=MM/day=DD/<YYYYmmddHH>_<i>.json    (JSON lines)

``<i>`` is the writer's number (``writer``), so several shippers never write the same file. Sinks: ``LocalSink``
(the default), ``S3Sink`` (boto3) and ``FluentdSink`` (the forward protocol); the last two need the ``sinks`` extra.
"""

from __future__ import annotations

import functools
import os
import time
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
    stamp = record.get("time")
    if isinstance(stamp, str) and stamp.endswith("+00:00") and len(stamp) >= 13:
        # the records' own UTC ISO times: one path per hour, so format it once per hour, not once per record
        return _hour_key(record.get("tag", "unknown"), record.get("model_name"), record.get("model_version"),
                         stamp[:13], writer)  # fmt: skip
    return _key(record, _moment(stamp), writer)


@functools.lru_cache(maxsize=1024)
def _hour_key(tag: Any, model: Any, version: Any, hour: str, writer: int) -> str:
    return _key({"tag": tag, "model_name": model, "model_version": version}, _moment(hour + ":00:00+00:00"), writer)


def _key(record: dict[str, Any], moment: datetime, writer: int) -> str:
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


class S3Sink:
    """One object per (layout file, batch) in ``bucket`` under ``prefix``; S3 cannot append, so ``<i>`` is
    ``<writer>-<nanoseconds>``, unique and increasing per writer. ``client`` is a boto3 S3 client (its endpoint,
    region and credentials come from the Connection that configures the sink)."""

    name = "s3"

    def __init__(self, client: Any, bucket: str, prefix: str = "", writer: int = 0) -> None:
        self.client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.writer = writer

    @classmethod
    def from_settings(
        cls,
        bucket: str,
        *,
        prefix: str = "",
        endpoint_url: str | None = None,
        region: str | None = None,
        key_id: str | None = None,
        key_secret: str | None = None,
        writer: int = 0,
    ) -> S3Sink:
        import boto3  # noqa: PLC0415  # only an S3 sink needs it (the ``sinks`` extra)

        client = boto3.client(
            "s3", endpoint_url=endpoint_url, region_name=region or "us-east-1",
            aws_access_key_id=key_id, aws_secret_access_key=key_secret,
        )  # fmt: skip
        return cls(client, bucket, prefix, writer)

    def deliver(self, records: list[dict[str, Any]]) -> None:
        batch = time.time_ns()
        grouped: dict[str, list[bytes]] = defaultdict(list)
        for record in records:
            grouped[record_key(record, self.writer)].append(orjson.dumps(record) + b"\n")
        for key, lines in grouped.items():
            name = key.removesuffix(f"_{self.writer}.json") + f"_{self.writer}-{batch}.json"
            self.client.put_object(
                Bucket=self.bucket, Key=f"{self.prefix}/{name}" if self.prefix else name, Body=b"".join(lines)
            )


class FluentdSink:
    """Fluentd's forward protocol (``fluent-logger``): each record is sent with the tag ``<tag_prefix>.<tag>`` and
    its time; a batch that cannot be sent whole raises (and comes again)."""

    name = "fluentd"

    def __init__(self, host: str, port: int = 24224, tag_prefix: str = "legion", timeout_s: float = 3.0) -> None:
        self.host = host
        self.port = port
        self.tag_prefix = tag_prefix
        self.timeout_s = timeout_s

    def deliver(self, records: list[dict[str, Any]]) -> None:
        from fluent import sender  # noqa: PLC0415  # only a Fluentd sink needs it (the ``sinks`` extra)

        client = sender.FluentSender(self.tag_prefix, host=self.host, port=self.port, timeout=self.timeout_s)
        try:
            for record in records:
                if not client.emit_with_time(
                    str(record.get("tag", "unknown")), _moment(record.get("time")).timestamp(), record
                ):
                    raise ConnectionError(f"fluentd at {self.host}:{self.port}: {client.last_error}")
        finally:
            client.close()

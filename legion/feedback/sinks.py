"""Where records go: the ``Sink`` protocol and the local directory sink in Legion's layout.

``deliver(records)`` returns once the sink holds the records (durably, as far as the sink can say) or raises;
the shipper retries a failed batch, so a sink must accept a batch it has seen before (duplicates are allowed,
losses are not).

Legion's layout, kept so that existing downstream jobs keep working::

    model_log/<tag>/<model>/<version>/year=YYYY/month=MM/day=DD/<YYYYmmddHH>_<i>.json    (JSON lines)

``<i>`` is the writer's number (``writer``), so several shippers never write the same file. Sinks: ``LocalSink``
(the default), ``S3Sink`` (boto3) and ``FluentdSink`` (the forward protocol); the last two need the ``sinks`` extra.
Records arrive ``Encoded``: the local and S3 sinks write each one's JSON as the writer made it, grouped by its
place, and never parse it.
"""

from __future__ import annotations

import functools
import os
import time
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from legion.feedback.records import Encoded, Place, moment


class Sink(Protocol):
    name: str

    def deliver(self, records: Sequence[Encoded]) -> None:
        """Take the records, or raise (the batch will come again)."""
        ...


@functools.lru_cache(maxsize=1024)
def layout_path(place: Place, writer: int) -> str:
    """The path of a record in Legion's layout, relative to the sink's root (one per place: formatted once)."""
    moment = datetime.fromisoformat(place.hour + ":00:00+00:00")
    return (
        f"model_log/{place.tag}/{place.model_name}/{place.model_version}/year={moment:%Y}/month={moment:%m}/"
        f"day={moment:%d}/{moment:%Y%m%d%H}_{writer}.json"
    )


def grouped(records: Sequence[Encoded], writer: int) -> dict[str, bytes]:
    """The records as JSON lines, by layout path."""
    lines: dict[str, list[bytes]] = defaultdict(list)
    for record in records:
        lines[layout_path(record.place, writer)].append(record.json)
    return {key: b"\n".join(found) + b"\n" for key, found in lines.items()}


class LocalSink:
    """JSON-lines files under ``root`` in Legion's layout; each batch is appended and fsynced."""

    name = "local"

    def __init__(self, root: Path, writer: int = 0) -> None:
        self.root = root
        self.writer = writer

    def deliver(self, records: Sequence[Encoded]) -> None:
        for key, content in grouped(records, self.writer).items():
            path = self.root / key
            path.parent.mkdir(parents=True, exist_ok=True)
            descriptor = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(descriptor, content)
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

    def deliver(self, records: Sequence[Encoded]) -> None:
        batch = time.time_ns()
        for key, content in grouped(records, self.writer).items():
            name = key.removesuffix(f"_{self.writer}.json") + f"_{self.writer}-{batch}.json"
            self.client.put_object(
                Bucket=self.bucket, Key=f"{self.prefix}/{name}" if self.prefix else name, Body=content
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

    def deliver(self, records: Sequence[Encoded]) -> None:
        from fluent import sender  # noqa: PLC0415  # only a Fluentd sink needs it (the ``sinks`` extra)

        client = sender.FluentSender(self.tag_prefix, host=self.host, port=self.port, timeout=self.timeout_s)
        try:
            for encoded in records:
                record = encoded.value()
                if not client.emit_with_time(encoded.place.tag, moment(record.get("time")).timestamp(), record):
                    raise ConnectionError(f"fluentd at {self.host}:{self.port}: {client.last_error}")
        finally:
            client.close()

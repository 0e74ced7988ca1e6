"""The S3 sink against a real S3 server (moto's, on loopback) and the Fluentd sink against a forward-protocol
receiver run here: both deliver the same records as the local sink, and an unreachable one buffers, then delivers."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest

from legion.feedback import records
from legion.feedback.buffer import DiskBuffer
from legion.feedback.records import encode
from legion.feedback.shipper import Shipper
from legion.feedback.sinks import FluentdSink, LocalSink, S3Sink
from tests.support.s3 import moto_s3
from tests.support.server import wait_until


def batch() -> list[dict[str, Any]]:
    made = []
    for i in range(50):
        made.append(records.request_response(
            request_id=f"r{i}", model_name="census", model_version="1.0", endpoint="default", method="POST",
            path="/api/model/invoke", headers={"Authorization": "Bearer t"}, request_body={"columns": ["a"],
            "data": [[i]]}, status=200, latency_s=0.004, time="2026-11-25T13:05:00+00:00",
        ))  # fmt: skip
        made.append(records.response_body(request_id=f"r{i}", model_name="census", model_version="1.0", body=[i],
                                          time="2026-11-25T13:05:00+00:00"))  # fmt: skip
    return made


def local_copy(tmp_path: Path) -> list[dict[str, Any]]:
    LocalSink(tmp_path / "local").deliver([encode(r) for r in batch()])
    return sorted(
        (json.loads(line) for p in (tmp_path / "local").rglob("*.json") for line in p.read_text().splitlines()),
        key=lambda r: (r["tag"], r["request_id"]),
    )


@pytest.fixture(scope="module")
def s3() -> Iterator[tuple[str, Any]]:
    with moto_s3() as server:
        yield server


def test_the_s3_sink_delivers_what_the_local_sink_does(s3: tuple[str, Any], tmp_path: Path) -> None:
    url, client = s3
    sink = S3Sink.from_settings("predictions", prefix="legion", endpoint_url=url, key_id="test", key_secret="test")
    sink.deliver([encode(r) for r in batch()])
    keys = [o["Key"] for o in client.list_objects_v2(Bucket="predictions", Prefix="legion/")["Contents"]]
    assert {k.rsplit("_", 1)[0] for k in keys} == {
        "legion/model_log/request_response/census/1.0/year=2026/month=11/day=25/2026112513",
        "legion/model_log/response_body/census/1.0/year=2026/month=11/day=25/2026112513",
    }
    got = [json.loads(line) for k in keys
           for line in client.get_object(Bucket="predictions", Key=k)["Body"].read().decode().splitlines()]  # fmt: skip
    assert sorted(got, key=lambda r: (r["tag"], r["request_id"])) == local_copy(tmp_path)


class ForwardReceiver:
    """A Fluentd forward-protocol endpoint: decodes ``[tag, time, record]`` messages from each connection."""

    def __init__(self, port: int = 0) -> None:
        self.sock = socket.create_server(("127.0.0.1", port))
        self.port = self.sock.getsockname()[1]
        self.received: list[tuple[str, dict[str, Any]]] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while True:
            try:
                connection, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._read, args=(connection,), daemon=True).start()

    def _read(self, connection: socket.socket) -> None:
        unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, ext_hook=lambda code, data: data)
        with connection:
            while chunk := connection.recv(65536):
                unpacker.feed(chunk)
                for tag, _time, record, *_ in unpacker:
                    self.received.append((tag, record))

    def close(self) -> None:
        self.sock.close()


def test_the_fluentd_sink_delivers_what_the_local_sink_does(tmp_path: Path) -> None:
    receiver = ForwardReceiver()
    try:
        FluentdSink("127.0.0.1", receiver.port).deliver([encode(r) for r in batch()])
        wait_until(lambda: len(receiver.received) == 100, 10, "100 records at the receiver")
    finally:
        receiver.close()
    assert {tag for tag, _ in receiver.received} == {"legion.request_response", "legion.response_body"}
    got = sorted((r for _, r in receiver.received), key=lambda r: (r["tag"], r["request_id"]))
    assert got == local_copy(tmp_path)


def test_an_unreachable_fluentd_buffers_then_delivers(tmp_path: Path) -> None:
    placeholder = socket.create_server(("127.0.0.1", 0))
    port = placeholder.getsockname()[1]
    placeholder.close()  # nothing listens there yet: the sink fails
    buffer = DiskBuffer(tmp_path / "buffer")
    shipper = Shipper(buffer, FluentdSink("127.0.0.1", port, timeout_s=0.5), retry_s=0.05, max_retry_s=0.2).start()
    try:
        for record in batch():
            buffer.append(record)
        wait_until(lambda: shipper.failures >= 2, 10, "failed deliveries")
        receiver = ForwardReceiver(port)  # the sink comes up on its address
        try:
            wait_until(lambda: {r["request_id"] for _, r in receiver.received} == {f"r{i}" for i in range(50)}, 20,
                       "every record after the sink came back")  # fmt: skip
        finally:
            receiver.close()
    finally:
        shipper.stop()

"""The on-disk buffer and the shipper: order, segments, bounds, a kill -9 mid-stream, a sink that fails then works."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from legion.feedback import entries, records
from legion.feedback.buffer import HEAD, DiskBuffer, Position, frame
from legion.feedback.log import FanOutSink
from legion.feedback.records import Encoded, decode_line, encode
from legion.feedback.shipper import Shipper
from legion.feedback.sinks import LocalSink, Sink, layout_path
from tests.support.server import wait_until


def record(i: int, time: str = "2026-11-25T13:05:00+00:00") -> dict[str, Any]:
    return records.response_body(request_id=f"r{i}", model_name="census", model_version="1.0", body=[i], time=time)


def sunk(root: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for path in sorted(root.rglob("*.json")) for line in path.read_text().splitlines()]


def test_records_come_back_in_order_across_segments_and_a_reopen(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, segment_bytes=300)
    for i in range(20):
        assert buffer.append(record(i))
    assert len(list((tmp_path / "segments").iterdir())) > 3, "small segments rotate"
    got, position = buffer.read(max_records=7)
    assert [r.value()["request_id"] for r in got] == [f"r{i}" for i in range(7)]
    buffer.commit(position)
    buffer.close()

    again = DiskBuffer(tmp_path, segment_bytes=300)  # a new process: resumes at the cursor, writes a new segment
    again.append(record(20))
    rest, end = again.read(max_records=100)
    assert [r.value()["request_id"] for r in rest] == [f"r{i}" for i in range(7, 21)]
    again.commit(end)
    assert again.read()[0] == [] and again.pending_bytes == 0
    assert len(list((tmp_path / "segments").iterdir())) == 1, "delivered segments are deleted"


def test_a_record_larger_than_a_segment_gets_one_of_its_own(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path, segment_bytes=200)
    big = records.response_body(request_id="big", model_name="census", model_version="1.0", body=["x" * 1000])
    assert buffer.append(record(1)) and buffer.append(big) and buffer.append(record(2))
    got, _ = buffer.read()
    assert [r.value()["request_id"] for r in got] == ["r1", "big", "r2"]
    assert got[1].value() == big
    buffer.close()
    sizes = sorted(p.stat().st_size for p in (tmp_path / "segments").iterdir())
    assert sizes[-1] == len(frame(entries.record(big))), "the big record alone in its segment"
    again = DiskBuffer(tmp_path, segment_bytes=200)
    got, _ = again.read(chunk_bytes=100)  # read 100 bytes at a time, unless an entry is larger
    assert [r.value()["request_id"] for r in got] == ["r1", "big", "r2"]
    assert [r.value()["request_id"] for r in again.read(max_records=1, chunk_bytes=100)[0]] == ["r1"]


def test_a_full_buffer_drops_new_records_and_counts_them(tmp_path: Path) -> None:
    size = len(frame(entries.record(record(0))))
    buffer = DiskBuffer(tmp_path, max_bytes=3 * size)
    assert [buffer.append(record(i)) for i in range(5)] == [True, True, True, False, False]
    assert buffer.dropped == 2
    got, position = buffer.read()
    buffer.commit(position)
    assert buffer.append(record(9)), "delivering makes room again"
    assert [r.value()["request_id"] for r in got] == ["r0", "r1", "r2"]


def test_the_local_sink_uses_legions_layout(tmp_path: Path) -> None:
    LocalSink(tmp_path, writer=3).deliver([encode(record(1)), encode(record(2, time="2026-01-03T00:59:59+01:00"))])
    paths = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*.json"))
    assert paths == [
        "model_log/response_body/census/1.0/year=2026/month=01/day=02/2026010223_3.json",
        "model_log/response_body/census/1.0/year=2026/month=11/day=25/2026112513_3.json",
    ]
    assert layout_path(encode(record(1)).place, 0).endswith("2026112513_0.json")
    assert [r["request_id"] for r in sunk(tmp_path)] == ["r2", "r1"]


def test_segments_of_lines_from_before_entries_are_still_delivered(tmp_path: Path) -> None:
    (tmp_path / "segments").mkdir()
    made = encode(record(1))
    line = b'["response_body","census","1.0","2026-11-25T13"]\t' + made.json + b"\n"
    assert decode_line(line[:-1]) == made
    assert decode_line(encode(record(2)).json) == encode(record(2)), "a line from before places: parsed for it"
    cut = line[: len(line) // 2]
    (tmp_path / "segments" / "0000000004.jsonl").write_bytes(line + cut + b"\n" + encode(record(2)).json + b"\n")
    buffer = DiskBuffer(tmp_path)
    buffer.append(record(3))
    assert [r.value()["request_id"] for r in buffer.read(chunk_bytes=20)[0]] == ["r1", "r2", "r3"], "lines > chunks"
    got, position = buffer.read()
    assert [r.value()["request_id"] for r in got] == ["r1", "r2", "r3"], "the cut line skipped, in order"
    buffer.commit(position)
    assert [p.name for p in (tmp_path / "segments").iterdir()] == ["0000000005.log"]
    for broken in (cut, b'["response_body","census"]\t{}', b"[1,2,3,4]\t{}"):
        with pytest.raises(ValueError):
            decode_line(broken)


@pytest.mark.parametrize(
    "damage",
    [
        lambda f: f[:-20],  # cut by a crash
        lambda f: f[: HEAD.size - 3],  # cut inside its head
        lambda f: f[:-1] + bytes([f[-1] ^ 1]),  # a flipped bit: the checksum fails
        lambda f: bytes(len(f)),  # zeros (a machine crash can leave them)
    ],
    ids=["cut", "cut-head", "checksum", "zeros"],
)
def test_a_damaged_frame_ends_its_segment_and_the_rest_is_delivered(tmp_path: Path, damage: Any) -> None:
    buffer = DiskBuffer(tmp_path)
    buffer.append(record(1))
    buffer.close()
    segment = next((tmp_path / "segments").iterdir())
    with segment.open("ab") as file:
        file.write(damage(frame(entries.record(record(2)))))
    again = DiskBuffer(tmp_path)  # the restarted writer: a new segment
    again.append(record(3))
    got, position = again.read()
    assert [r.value()["request_id"] for r in got] == ["r1", "r3"]
    again.commit(position)
    assert again.read()[0] == [] and again.pending_bytes == 0


def test_a_frame_still_being_written_is_waited_for(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path)
    buffer.append(record(1))
    shipper_view = DiskBuffer(tmp_path, write=False)
    whole = frame(entries.record(record(2)))
    segment = next((tmp_path / "segments").iterdir())
    with segment.open("ab", buffering=0) as file:
        file.write(whole[:25])
        got, position = shipper_view.read()
        assert [r.value()["request_id"] for r in got] == ["r1"]
        shipper_view.commit(position)
        file.write(whole[25:])
    got, _ = shipper_view.read()
    assert [r.value()["request_id"] for r in got] == ["r2"]


FULL_DISK = """
import resource, signal, sys
from pathlib import Path
from legion.feedback import records
from legion.feedback.buffer import DiskBuffer

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # past the limit a write is cut short, then fails (EFBIG)
resource.setrlimit(resource.RLIMIT_FSIZE, (1000, 1000))  # a disk with 1000 bytes left for each file
buffer = DiskBuffer(Path(sys.argv[1]))
for i in range(40):
    made = records.response_body(request_id=f"r{i}", model_name="m", model_version="1", body=["x" * 50])
    try:
        print(i, buffer.append(made), flush=True)
    except OSError:
        print(i, "error", flush=True)
"""


def test_a_write_cut_short_by_a_full_disk_drops_that_record_only(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-c", FULL_DISK, str(tmp_path)], capture_output=True, text=True, check=True)
    said = dict(line.split() for line in done.stdout.splitlines())
    kept = [f"r{i}" for i, answer in said.items() if answer == "True"]
    assert "False" in said.values(), "a frame was cut short"
    assert len(kept) > 20, "the writer went on in a new segment"
    got, _ = DiskBuffer(tmp_path, write=False).read()
    assert [r.value()["request_id"] for r in got] == kept, "every record it kept; the cut ones skipped"


class FlakySink:
    """A sink that fails its first ``failures`` deliveries, then writes to a LocalSink."""

    name = "flaky"

    def __init__(self, root: Path, failures: int) -> None:
        self.inner = LocalSink(root)
        self.failures = failures

    def deliver(self, batch: list[Encoded]) -> None:
        if self.failures > 0:
            self.failures -= 1
            raise ConnectionError("sink unreachable")
        self.inner.deliver(batch)


def ship(buffer: DiskBuffer, sink: Sink, count: int) -> Shipper:
    """Append ``count`` records while a shipper delivers them to ``sink``; the stopped shipper, once all went."""
    shipper = Shipper(buffer, sink, retry_s=0.01).start()
    try:
        for i in range(count):
            buffer.append(record(i))
        wait_until(lambda: shipper.delivered >= count, 30, "every record to be delivered")
    finally:
        shipper.stop()
    return shipper


def test_an_unreachable_sink_buffers_then_delivers_everything(tmp_path: Path) -> None:
    buffer = DiskBuffer(tmp_path / "buffer", segment_bytes=1000)
    shipper = ship(buffer, FlakySink(tmp_path / "sink", failures=3), 500)
    assert shipper.failures == 3
    assert sorted(r["request_id"] for r in sunk(tmp_path / "sink")) == sorted(f"r{i}" for i in range(500))


def test_a_sink_that_is_down_does_not_make_the_others_write_twice(tmp_path: Path) -> None:
    flaky = FlakySink(tmp_path / "flaky", failures=5)
    shipper = ship(DiskBuffer(tmp_path / "buffer"), FanOutSink([LocalSink(tmp_path / "steady"), flaky]), 200)
    assert shipper.failures == 5
    assert sorted(r["request_id"] for r in sunk(tmp_path / "steady")) == sorted(f"r{i}" for i in range(200))
    assert sorted(r["request_id"] for r in sunk(tmp_path / "flaky")) == sorted(f"r{i}" for i in range(200))


WRITER = """
import sys
from pathlib import Path
from legion.feedback import records
from legion.feedback.buffer import DiskBuffer

buffer = DiskBuffer(Path(sys.argv[1]), segment_bytes=4096)
i = 0
while True:
    buffer.append(records.response_body(request_id=f"r{i}", model_name="m", model_version="1", body=[i]))
    print(i, flush=True)  # acknowledged: like a 200 sent after the record was appended
    i += 1
"""


def test_a_killed_writer_loses_no_acknowledged_record(tmp_path: Path) -> None:
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path / "buffer")], stdout=subprocess.PIPE, text=True
    )
    assert writer.stdout is not None
    acknowledged: list[int] = []
    reader = threading.Thread(target=lambda: acknowledged.extend(int(line) for line in writer.stdout))  # type: ignore[union-attr]
    reader.start()
    try:
        wait_until(lambda: len(acknowledged) >= 3000, 60, "the writer to append 3000 records")
    finally:
        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        reader.join(10)
        writer.stdout.close()
    buffer = DiskBuffer(tmp_path / "buffer")
    shipper = Shipper(buffer, LocalSink(tmp_path / "sink"))
    while shipper.ship_once():
        pass
    delivered = {r["request_id"] for r in sunk(tmp_path / "sink")}
    missing = [i for i in acknowledged if f"r{i}" not in delivered]
    assert not missing, f"{len(missing)} acknowledged records lost, e.g. {missing[:5]}"
    assert buffer.cursor > Position(0, 0)


@pytest.mark.parametrize("name", ["Authorization", "cookie", "X-API-Key"])
def test_credentials_never_enter_a_record(name: str) -> None:
    made = records.request_response(
        request_id="r", model_name="m", model_version="1", endpoint="default", method="POST", path="/x",
        headers={name: "secret-value", "Content-Type": "application/json"}, request_body={}, status=200, latency_s=0.1,
    )  # fmt: skip
    assert "secret-value" not in json.dumps(made)
    assert made["request_http_headers"] == {"content-type": "application/json"}

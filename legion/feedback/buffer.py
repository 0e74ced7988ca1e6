"""``DiskBuffer``: entries appended to segment files on disk, read back as records in order from a cursor that
moves on ack.

Layout of the buffer's directory::

    segments/0000000007.log     frames, appended with one write() each (O_APPEND)
    cursor.json                 {"segment": 7, "offset": 1234}: everything before it was delivered

A frame is a 9-byte head, ``L``, the entry's length and its CRC-32 (both 4 bytes, little-endian), then the entry
(``entries``: a record, or a prediction that the reader makes into its two records).

Why it is shaped this way:

- ``append`` is one ``write`` of its frames (the gateway's predictions of one turn of its event loop together)
  to an open file: a few microseconds, no fsync, no lock held across I/O that could block the caller for long.
  The frames are in the kernel once ``append`` returns, so a crash of the
  process (kill -9) loses nothing appended; a crash of the machine may lose the last moments. (Copying into a
  shared mapping of the segment instead, without the per-turn batching, cost 10 us more CPU a request in the
  running gateway: each fresh page of the segment faults in.)
- A process that opens the buffer again starts a new segment rather than appending to the last one, and so does
  a writer whose ``write`` was cut short (a full disk): a cut frame is only ever the last one of a segment. The
  reader waits for the rest of a frame while its segment is being written and skips a cut one (logged) once a
  later segment exists; a frame whose head or checksum is wrong ends its segment the same way.
- Segments written before entries (``*.jsonl``, one record per line, ``records.decode_line``) are still read.
- The cursor moves (atomically: a temporary file renamed) only after the sink took the records, so a crash
  between the two delivers those records again: at least once.
- The buffer is bounded (``max_bytes``): a full buffer drops the new record and counts it (``dropped``), because
  a prediction must never wait for its log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import threading
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from legion.feedback import entries
from legion.feedback.records import Encoded, decode_line

log = logging.getLogger(__name__)

SEGMENTS: Final = "segments"
CURSOR: Final = "cursor.json"
SUFFIX: Final = ".log"
LINES_SUFFIX: Final = ".jsonl"
"""Segments written before entries: one record per line."""
MAGIC: Final = b"L"
HEAD: Final = struct.Struct("<cII")


def frame(entry: bytes) -> bytes:
    """An entry as the buffer writes it: head (magic, length, CRC-32), then the entry."""
    return HEAD.pack(MAGIC, len(entry), zlib.crc32(entry)) + entry


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """A place in the buffer: a segment number and a byte offset in it."""

    segment: int
    offset: int


class DiskBuffer:
    """Append records; ``read`` them from the cursor; ``commit`` once delivered.

    >>> buffer = DiskBuffer(Path("/var/lib/legion/gateway/buffer"))
    >>> buffer.append({"tag": "request_response", ...})
    True
    >>> records, position = buffer.read(max_records=500)  # Encoded records
    >>> sink.deliver(records); buffer.commit(position)
    """

    def __init__(
        self, directory: Path, *, segment_bytes: int = 4 << 20, max_bytes: int = 512 << 20, write: bool = True
    ) -> None:
        """``write=False`` opens the buffer to read and commit only (a shipper in another process than the
        writer): no segment is started, and a segment counts as finished once a later one exists."""
        self.directory = directory
        self.writing = write
        self.segment_bytes = segment_bytes
        self.max_bytes = max_bytes
        self.dropped = 0
        """Records refused because the buffer was full (or the disk)."""
        self.appended = 0
        self.writes = 0
        """``write`` calls made (each append is one)."""
        (directory / SEGMENTS).mkdir(parents=True, exist_ok=True)
        self._line_segments = {int(p.stem) for p in (directory / SEGMENTS).glob(f"*{LINES_SUFFIX}") if p.stem.isdigit()}
        self._lock = threading.Lock()
        self._cursor = self._read_cursor()
        numbers = self._segment_numbers()
        self._active = max([*numbers, self._cursor.segment - 1]) + (1 if write else 0)
        self._file = self._open(self._active) if write else -1
        self._size = 0
        self._pending_bytes = sum(self._path(n).stat().st_size for n in numbers if n >= self._cursor.segment)
        self._pending_bytes -= self._cursor.offset if self._cursor.segment in numbers else 0
        self._listeners: tuple[threading.Event, ...] = ()

    # -- writing -----------------------------------------------------------------------------------------------

    def append(self, *records: Mapping[str, Any]) -> bool:
        """Add records in one write; False (and all counted in ``dropped``) when the buffer is full."""
        return self.append_entries([entries.record(r) for r in records], len(records))

    def append_entries(self, batch: Sequence[bytes], count: int) -> bool:
        """Write entries (``entries``) that hold ``count`` records, framed, in one write; False (counted in
        ``dropped``) when the buffer is full. Raises ``OSError`` when the write failed (then nothing was written)."""
        frames = b"".join(map(frame, batch))
        with self._lock:
            if self._pending_bytes + len(frames) > self.max_bytes and self._recount() + len(frames) > self.max_bytes:
                self.dropped += count
                return False
            if self._size and self._size + len(frames) > self.segment_bytes:
                self._next_segment()
            written = os.write(self._file, frames)
            self.writes += 1
            self._size += written
            self._pending_bytes += written
            if written < len(frames):  # a full disk cut the frame: it stays the last one of its segment
                self._next_segment()
                self.dropped += count
                return False
            self.appended += count
        for event in self._listeners:  # a shipper in this process (none when it runs in its own)
            event.set()
        return True

    def notify(self, event: threading.Event) -> None:
        """Set ``event`` after each append (a shipper thread sleeps on it); register before appends begin."""
        self._listeners = (*self._listeners, event)

    def close(self) -> None:
        with self._lock:
            if self._file >= 0:
                os.close(self._file)
                self._file = -1

    def _next_segment(self) -> None:
        os.close(self._file)
        self._active += 1
        self._file, self._size = self._open(self._active), 0

    # -- reading -----------------------------------------------------------------------------------------------

    @property
    def cursor(self) -> Position:
        """Where delivery stands: everything before it was delivered."""
        return self._cursor

    @property
    def pending_bytes(self) -> int:
        """Bytes appended and not yet delivered."""
        return self._pending_bytes

    def read(self, max_records: int = 1000, chunk_bytes: int = 1 << 20) -> tuple[list[Encoded], Position]:
        """Records from the cursor on (complete entries only, about ``max_records`` of them: a prediction's two
        come together) and the position after them; nothing moves yet.

        Segments are read ``chunk_bytes`` at a time (more when one entry is larger), so a shipper behind by a
        hundred megabytes reads about what it delivers."""
        records: list[Encoded] = []
        position = self._cursor
        while len(records) < max_records:
            # before reading: a segment still being written may grow after our read
            finished = position.segment < (self._active if self.writing else max(self._segment_numbers(), default=0))
            path = self._path(position.segment)
            lines = position.segment in self._line_segments
            chunk = _read(path, position.offset, chunk_bytes, frames=not lines)
            used, broken = (_lines if lines else _frames)(chunk, records, max_records, path.name)
            position = Position(position.segment, position.offset + used)
            if not broken and len(records) >= max_records:
                break  # more in this segment than asked for
            if not broken and used and len(chunk) >= chunk_bytes:
                continue  # the segment goes on after this chunk
            if not finished:
                break  # the segment being written when it was read: the rest comes later
            if used < len(chunk):
                log.warning("skipping the last %d bytes of %s: %s", len(chunk) - used, path.name,
                            "not a frame" if broken else "cut short (a crash while they were written)")  # fmt: skip
            position = Position(position.segment + 1, 0)  # this one is read to its end
        return records, position

    def commit(self, position: Position) -> None:
        """Everything before ``position`` is delivered: move the cursor there and delete finished segments."""
        with self._lock:
            delivered = self._distance(self._cursor, position)
            self._cursor = position
            self._pending_bytes = max(self._pending_bytes - delivered, 0)
        temporary = self.directory / (CURSOR + ".tmp")
        temporary.write_bytes(orjson.dumps({"segment": position.segment, "offset": position.offset}))
        os.replace(temporary, self.directory / CURSOR)
        for number in self._segment_numbers():
            if number < position.segment:
                self._path(number).unlink(missing_ok=True)

    # -- files ---------------------------------------------------------------------------------------------------

    def _distance(self, start: Position, end: Position) -> int:
        if end.segment == start.segment:
            return end.offset - start.offset
        total = end.offset
        for number in range(start.segment, end.segment):
            try:
                total += self._path(number).stat().st_size - (start.offset if number == start.segment else 0)
            except FileNotFoundError:
                continue
        return total

    def _recount(self) -> int:
        """Pending bytes from the files (a shipper in another process commits without telling the writer)."""
        cursor = self._read_cursor()
        numbers = self._segment_numbers()
        total = 0
        for number in numbers:
            if number >= cursor.segment:
                with contextlib.suppress(FileNotFoundError):
                    total += self._path(number).stat().st_size
        self._pending_bytes = total - (cursor.offset if cursor.segment in numbers else 0)
        return self._pending_bytes

    def _path(self, number: int) -> Path:
        return self.directory / SEGMENTS / f"{number:010d}{LINES_SUFFIX if number in self._line_segments else SUFFIX}"

    def _open(self, number: int) -> int:
        return os.open(self._path(number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _segment_numbers(self) -> list[int]:
        return sorted(int(p.stem) for p in (self.directory / SEGMENTS).glob("*") if p.stem.isdigit())

    def _read_cursor(self) -> Position:
        try:
            data = orjson.loads((self.directory / CURSOR).read_bytes())
            return Position(int(data["segment"]), int(data["offset"]))
        except FileNotFoundError:
            numbers = self._segment_numbers()
            return Position(numbers[0] if numbers else 0, 0)
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            log.warning("the buffer cursor %s is unreadable; delivering from the oldest segment", self.directory)
            numbers = self._segment_numbers()
            return Position(numbers[0] if numbers else 0, 0)


def _read(path: Path, offset: int, size: int, *, frames: bool) -> bytes:
    """Up to ``size`` bytes of ``path`` from ``offset`` (more when the frame or line there is larger: a big
    record)."""
    try:
        with path.open("rb") as file:
            file.seek(offset)
            chunk = file.read(size)
            if len(chunk) < size:
                return chunk
            if frames and len(chunk) >= HEAD.size:
                chunk += file.read(max(HEAD.size + HEAD.unpack_from(chunk)[1] - len(chunk), 0))
            elif not frames and b"\n" not in chunk:
                chunk += file.readline()
            return chunk
    except FileNotFoundError:
        return b""


def _frames(chunk: bytes, records: list[Encoded], max_records: int, name: str) -> tuple[int, bool]:
    """Add the records of the complete frames at the start of ``chunk`` to ``records`` (until there are
    ``max_records``); the bytes those frames took, and whether the frame after them is broken (its head or
    checksum is wrong: what follows it in the segment cannot be read)."""
    at = 0
    while len(records) < max_records and at + HEAD.size <= len(chunk):
        magic, size, checksum = HEAD.unpack_from(chunk, at)
        end = at + HEAD.size + size
        if magic != MAGIC:
            return at, True
        if end > len(chunk):
            break  # the rest of it is still being written, or was cut by a crash
        entry = chunk[at + HEAD.size : end]
        if zlib.crc32(entry) != checksum:
            return at, True
        try:
            records.extend(entries.expand(entry))
        except ValueError as exc:
            log.warning("skipping an entry in %s: %s", name, exc)
        at = end
    return at, False


def _lines(chunk: bytes, records: list[Encoded], max_records: int, name: str) -> tuple[int, bool]:
    """``_frames`` for a segment of lines (written before entries)."""
    lines = chunk[: chunk.rfind(b"\n") + 1].split(b"\n")[:-1][: max_records - len(records)]
    for line in lines:
        try:
            records.append(decode_line(line))
        except ValueError:  # orjson's JSONDecodeError is one too
            log.warning("skipping a cut record in %s (a crash while it was written)", name)
    return sum(len(line) + 1 for line in lines), False

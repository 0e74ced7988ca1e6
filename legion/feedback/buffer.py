"""``DiskBuffer``: records appended to segment files on disk, read back in order from a cursor that moves on ack.

Layout of the buffer's directory::

    segments/0000000007.jsonl   one record per line (``records.to_line``), appended with one write() each (O_APPEND)
    cursor.json                 {"segment": 7, "offset": 1234}: everything before it was delivered

Why it is shaped this way:

- ``append`` is one ``write`` of its lines (a prediction's two records together) to an open file: a few
  microseconds, no fsync, no lock held across I/O that could block the caller for long. The lines are in the
  kernel once ``append`` returns, so a crash of the process (kill -9) loses nothing appended; a crash of the
  machine may lose the last moments. (Copying into a shared mapping of the segment instead measured the same in
  the running gateway, 5-7 us either way, so the simpler ``write`` stays.)
- A process that opens the buffer again starts a new segment rather than appending to the last one, so a line
  cut by a crash can never be glued to the next record; the reader skips such a cut line and logs it.
- A line carries the record's place in the sinks before its JSON, so reading is splitting lines: no record is
  parsed or encoded again between the writer and the sink.
- The cursor moves (atomically: a temporary file renamed) only after the sink took the records, so a crash
  between the two delivers those records again: at least once.
- The buffer is bounded (``max_bytes``): a full buffer drops the new record and counts it (``dropped``), because
  a prediction must never wait for its log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import orjson

from legion.feedback.records import Encoded, decode_line, encode, to_line

log = logging.getLogger(__name__)

SEGMENTS: Final = "segments"
CURSOR: Final = "cursor.json"
SUFFIX: Final = ".jsonl"


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
        """Records refused because the buffer was full."""
        self.appended = 0
        (directory / SEGMENTS).mkdir(parents=True, exist_ok=True)
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
        return self.append_lines(b"".join(to_line(encode(r)) for r in records), len(records))

    def append_lines(self, line: bytes, count: int) -> bool:
        """``append`` for ``count`` records already made into the buffer's lines (``records.to_line``)."""
        with self._lock:
            if self._pending_bytes + len(line) > self.max_bytes and self._recount() + len(line) > self.max_bytes:
                self.dropped += count
                return False
            if self._size and self._size + len(line) > self.segment_bytes:
                os.close(self._file)
                self._active += 1
                self._file, self._size = self._open(self._active), 0
            os.write(self._file, line)
            self._size += len(line)
            self._pending_bytes += len(line)
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

    # -- reading -----------------------------------------------------------------------------------------------

    @property
    def cursor(self) -> Position:
        """Where delivery stands: everything before it was delivered."""
        return self._cursor

    @property
    def pending_bytes(self) -> int:
        """Bytes appended and not yet delivered."""
        return self._pending_bytes

    def read(self, max_records: int = 1000, max_bytes: int = 16 << 20) -> tuple[list[Encoded], Position]:
        """Records from the cursor on (complete lines only) and the position after them; nothing moves yet."""
        records: list[Encoded] = []
        position = self._cursor
        while len(records) < max_records:
            # before reading: a segment still being written may grow after our read
            active = self._active if self.writing else max(self._segment_numbers(), default=0)
            path = self._path(position.segment)
            try:
                with path.open("rb") as file:
                    file.seek(position.offset)
                    chunk = file.read(max_bytes)
            except FileNotFoundError:
                chunk = b""
            end = chunk.rfind(b"\n") + 1
            lines = chunk[:end].splitlines()[: max_records - len(records)]
            used = sum(len(line) + 1 for line in lines)
            for line in lines:
                try:
                    records.append(decode_line(line))
                except ValueError:  # orjson's JSONDecodeError is one too
                    log.warning("skipping a cut record in %s (a crash while it was written)", path.name)
            position = Position(position.segment, position.offset + used)
            if used < end or len(records) >= max_records or len(chunk) >= max_bytes:
                break  # more in this segment than asked for
            if position.segment >= active:
                break  # the segment being written when it was read: the rest comes later
            position = Position(position.segment + 1, 0)  # this one is read to its end (a cut tail is dropped)
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
        return self.directory / SEGMENTS / f"{number:010d}{SUFFIX}"

    def _open(self, number: int) -> int:
        return os.open(self._path(number), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    def _segment_numbers(self) -> list[int]:
        return sorted(int(p.stem) for p in (self.directory / SEGMENTS).glob(f"*{SUFFIX}") if p.stem.isdigit())

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

"""Run ``legion serve`` as a real subprocess on 127.0.0.1, port 0, and wait for readiness with a deadline."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx

STARTUP_DEADLINE_S = 60.0


def wait_until(condition: Callable[[], bool], deadline_s: float, what: str, interval_s: float = 0.02) -> None:
    """Poll ``condition`` until it holds; fail naming ``what`` after ``deadline_s``."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if condition():
            return
        time.sleep(interval_s)
    raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")


class ServerProcess:
    """A ``legion serve`` child process; ``url`` is known once it printed its port."""

    def __init__(
        self,
        model: Path,
        args: Sequence[str] = (),
        env: dict[str, str] | None = None,
        global_args: Sequence[str] = (),
        *,
        command: Sequence[str] | None = None,
        startup_deadline_s: float = STARTUP_DEADLINE_S,
    ) -> None:
        self.startup_deadline_s = startup_deadline_s
        if command is None:
            command = [sys.executable, "-m", "legion", *global_args, "serve", str(model), "--port", "0", *args]
        self.process = subprocess.Popen(
            list(command),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, **(env or {})},
        )
        self.stderr_lines: list[str] = []
        self._lines: queue.Queue[str] = queue.Queue()
        self._readers = [
            threading.Thread(target=self._pump, args=(self.process.stdout, self._lines), daemon=True),
            threading.Thread(target=self._collect_stderr, daemon=True),
        ]
        for reader in self._readers:
            reader.start()
        try:
            self.url = self._read_url()
        except BaseException:
            self.stop()
            raise

    @staticmethod
    def _pump(stream: object, lines: queue.Queue[str]) -> None:
        for line in stream:  # type: ignore[attr-defined]
            lines.put(line)

    def _collect_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.stderr_lines.append(line)

    def _read_url(self) -> str:
        end = time.monotonic() + self.startup_deadline_s
        while time.monotonic() < end:
            try:
                line = self._lines.get(timeout=0.1)
            except queue.Empty:
                if self.process.poll() is not None:
                    raise AssertionError(f"legion serve exited early:\n{self.stderr}") from None
                continue
            if line.startswith("listening on "):
                return line.split("listening on ", 1)[1].strip()
        raise AssertionError(f"legion serve printed no address:\n{self.stderr}")

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def wait_ready(self, deadline_s: float = STARTUP_DEADLINE_S, path: str = "/v2/health/ready") -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"the server exited with {self.process.returncode}:\n{self.stderr}")
            try:
                return httpx.get(f"{self.url}{path}", timeout=2).status_code == 200
            except httpx.TransportError:
                return False

        wait_until(ready, deadline_s, f"{self.url} to be ready")

    def stop(self, timeout_s: float = 30.0) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout_s)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        for reader in self._readers:
            reader.join(timeout=5)
        for stream in (self.process.stdout, self.process.stderr):
            if stream is not None:
                stream.close()
        return self.process.returncode


@contextmanager
def serving(
    model: Path,
    args: Sequence[str] = (),
    env: dict[str, str] | None = None,
    *,
    startup_deadline_s: float = STARTUP_DEADLINE_S,
) -> Iterator[ServerProcess]:
    """A ready server for the ``with`` block, stopped (SIGTERM, by PID) after it; ``startup_deadline_s`` is how long
    it may take to print its address (longer for one that first makes the model's virtualenv)."""
    server = ServerProcess(model, args, env, startup_deadline_s=startup_deadline_s)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def failed_start(model: Path, args: Sequence[str] = (), deadline_s: float = STARTUP_DEADLINE_S) -> tuple[int, str]:
    """Exit code and standard error of a ``legion serve`` that is expected to stop by itself."""
    server = ServerProcess(model, args)
    try:
        code = server.process.wait(deadline_s)
    finally:
        server.stop()
    return code, server.stderr

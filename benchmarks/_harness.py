"""Shared pieces of the HTTP benchmarks: start a server and wait for it, load it with wrk, read wrk's report.

Used by ``benchmarks/serve.py`` (one model server against its baseline and its peers) and meant to be reused
by ``benchmarks/gateway.py``. Everything here is plain standard library plus the ``wrk`` binary, so a
benchmark can drive servers that live in other virtual environments.

Shape of a run::

    server = start_server("minimal", argv, ready_path="/health", port_pattern=UVICORN_PORT)
    try:
        answer = post_json(server.url("/invoke"), body)          # check it before loading it
        script = write_post_script("minimal-1", body)
        result = run_wrk(server.url("/invoke"), script, connections=32, threads=2, duration_s=10, warmup_s=2)
    finally:
        server.stop()                                            # by PID, also when the run fails

Why it is shaped this way:

- A server binds port 0 and prints the port it got; ``start_server`` reads it from the server's log (the
  output goes to a file, never to a pipe that could fill up and block the server). ``free_port`` exists only
  for third-party servers that cannot be given port 0.
- Every server runs in a session of its own, so ``Server.stop`` ends it and the workers it forked by
  signalling the process group whose id is the PID we started, and nothing else.
- Readiness is polled with a deadline; a server that exits or never becomes ready raises
  ``ServerStartError`` with the tail of its log, which the caller records as a failed server.
- Latency comes from wrk's ``--latency`` distribution (p50, p99) and throughput from its ``Requests/sec``;
  each measured run follows a short warm-up run with the same settings.
"""

from __future__ import annotations

import contextlib
import http.client
import importlib.metadata
import json
import os
import platform
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
WORK_DIR = HERE / ".work"
VENVS_DIR = HERE / ".venvs"
RESULTS_DIR = HERE / "results"
HOST = "127.0.0.1"

# "Uvicorn running on http://127.0.0.1:PORT" (uvicorn reports the bound port when given port 0).
UVICORN_PORT = re.compile(r"Uvicorn running on http://127\.0\.0\.1:(\d+)")


class BenchmarkError(Exception):
    """A benchmark step that cannot go on; the message says what to do."""


class ServerStartError(BenchmarkError):
    """A server exited, or did not become ready before its deadline."""


# --- in-process timing ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Latency:
    """Per-call latency of a function timed in process, in milliseconds."""

    p50_ms: float
    p99_ms: float
    calls: int


def percentile(sorted_values: Sequence[float], fraction: float) -> float:
    """The nearest-rank percentile of already sorted values."""
    index = min(len(sorted_values) - 1, max(0, round(fraction * len(sorted_values)) - 1))
    return sorted_values[index]


def median_interval(values: Sequence[float], *, confidence: float = 0.95, resamples: int = 5000) -> tuple[float, float]:
    """A bootstrap interval for the median of ``values`` (resampled with a fixed seed: the same values always give
    the same interval), to say how far a median over a few noisy rounds can be trusted."""
    draw = random.Random(0)
    medians = sorted(statistics.median(draw.choices(values, k=len(values))) for _ in range(resamples))
    tail = (1 - confidence) / 2
    return percentile(medians, tail), percentile(medians, 1 - tail)


def time_calls(call: Callable[[], object], *, min_calls: int, min_seconds: float, warmup_calls: int = 20) -> Latency:
    """Call ``call`` at least ``min_calls`` times and for at least ``min_seconds``; p50 and p99 per call."""
    for _ in range(warmup_calls):
        call()
    samples: list[float] = []
    clock = time.perf_counter_ns
    stop_after = time.perf_counter() + min_seconds
    while len(samples) < min_calls or time.perf_counter() < stop_after:
        start = clock()
        call()
        samples.append((clock() - start) / 1e6)
    samples.sort()
    return Latency(percentile(samples, 0.50), percentile(samples, 0.99), len(samples))


# --- servers -------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Server:
    """A server process we started; ``stop`` ends its whole process group."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log_path: Path

    def url(self, path: str) -> str:
        return f"http://{HOST}:{self.port}{path}"

    def stop(self, timeout_s: float = 10.0) -> None:
        """SIGTERM the process group led by our PID, then SIGKILL it if it lingers past ``timeout_s``."""
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout_s)
        # Forked workers may outlive a leader that exited on its own; the group id is still ours.
        _signal_group(self.process.pid, signal.SIGKILL)

    def log_tail(self, lines: int = 15) -> str:
        return log_tail(self.log_path, lines)


@dataclass(slots=True)
class Target:
    """An HTTP server to measure: how to start it, where to POST, how to encode a request and read the answer."""

    name: str
    path: str
    start: Callable[[], Server]
    encode: Callable[[Any], bytes]  # request rows (a DataFrame) -> the body this server takes
    answer_shape: Callable[[Any], tuple[int, int]]  # a decoded answer -> (rows, values per row)
    width: int  # values per answered row
    setup: str  # how it runs, for the record
    versions: dict[str, str | None] = field(default_factory=dict)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def log_tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def free_port() -> int:
    """A port that was free a moment ago: only for third-party servers that cannot be given port 0."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
        return port


def start_server(
    name: str,
    argv: Sequence[str],
    *,
    ready_path: str,
    port: int | None = None,
    port_pattern: re.Pattern[str] | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    deadline_s: float = 120.0,
) -> Server:
    """Start ``argv`` and return once ``GET ready_path`` answers 200, or raise ``ServerStartError``.

    Give either ``port`` (the server was told which one) or ``port_pattern`` (a regex whose first group is
    the port the server printed after binding port 0). Output goes to ``.work/logs/<name>.log``.
    """
    if (port is None) == (port_pattern is None):
        raise ValueError("give exactly one of port and port_pattern")
    log_path = WORK_DIR / "logs" / f"{name}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    child_env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            list(argv), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            env=child_env, cwd=cwd, start_new_session=True,
        )  # fmt: skip
    server = Server(name, process, port or 0, log_path)
    deadline = time.monotonic() + deadline_s
    try:
        if port_pattern is not None:
            server.port = _wait_for_port(server, port_pattern, deadline)
        _wait_ready(server, ready_path, deadline, deadline_s)
    except BaseException:
        server.stop()
        raise
    return server


def _wait_for_port(server: Server, pattern: re.Pattern[str], deadline: float) -> int:
    while time.monotonic() < deadline:
        match = pattern.search(server.log_path.read_text(encoding="utf-8", errors="replace"))
        if match:
            return int(match.group(1))
        _raise_if_exited(server)
        time.sleep(0.05)
    raise ServerStartError(f"{server.name} printed no port before its deadline:\n{server.log_tail()}")


def _wait_ready(server: Server, path: str, deadline: float, deadline_s: float) -> None:
    status: int | str = "no answer"
    while time.monotonic() < deadline:
        _raise_if_exited(server)
        try:
            status, _ = http_request(server.url(path), timeout_s=2.0)
        except OSError as exc:
            status = f"{type(exc).__name__}: {exc}"
        if status == 200:
            return
        time.sleep(0.1)
    raise ServerStartError(
        f"{server.name} was not ready within {deadline_s:.0f} s (GET {path}: {status}):\n{server.log_tail()}"
    )


def _raise_if_exited(server: Server) -> None:
    code = server.process.poll()
    if code is not None:
        raise ServerStartError(f"{server.name} exited with code {code}:\n{server.log_tail()}")


def http_request(
    url: str, body: bytes | None = None, *, headers: Mapping[str, str] | None = None, timeout_s: float = 10.0
) -> tuple[int, bytes]:
    """One request on a fresh connection (GET without a body, POST with one); the status and body."""
    match = re.fullmatch(r"http://([^/:]+):(\d+)(/.*)", url)
    if match is None:
        raise ValueError(f"not an http://host:port/path URL: {url}")
    connection = http.client.HTTPConnection(match.group(1), int(match.group(2)), timeout=timeout_s)
    try:
        connection.request(
            "GET" if body is None else "POST", match.group(3), body=body,
            headers={"Content-Type": "application/json", **(headers or {})},
        )  # fmt: skip
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def post_json(url: str, payload: bytes, timeout_s: float = 30.0) -> Any:
    """POST a JSON body and return the decoded answer; a non-200 status raises ``BenchmarkError``."""
    status, answer = http_request(url, payload, timeout_s=timeout_s)
    if status != 200:
        raise BenchmarkError(f"POST {url} answered {status}: {answer[:500]!r}")
    return json.loads(answer)


# --- wrk -----------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WrkResult:
    """What one wrk run measured; latencies in milliseconds."""

    p50_ms: float
    p99_ms: float
    rps: float
    requests: int
    errors: int  # non-2xx answers plus socket errors (connect, read, write, timeout)
    threads: int
    connections: int
    duration_s: float


_UNITS_MS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3, "h": 3600e3}


def _to_ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(text: str, *, threads: int, connections: int, duration_s: float) -> WrkResult:
    """Read p50, p99, requests/s and error counts from wrk's ``--latency`` report."""
    quantiles = {
        m.group(1): _to_ms(m.group(2), m.group(3))
        for m in re.finditer(r"^\s+(50|99)(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)\s*$", text, re.MULTILINE)
    }
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    total = re.search(r"^\s+(\d+) requests in ", text, re.MULTILINE)
    if rps is None or total is None or set(quantiles) != {"50", "99"}:
        raise BenchmarkError(f"cannot read wrk's report:\n{text}")
    errors = 0
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    if non_2xx:
        errors += int(non_2xx.group(1))
    sockets = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if sockets:
        errors += sum(int(n) for n in sockets.groups())
    return WrkResult(
        p50_ms=quantiles["50"], p99_ms=quantiles["99"], rps=float(rps.group(1)), requests=int(total.group(1)),
        errors=errors, threads=threads, connections=connections, duration_s=duration_s,
    )  # fmt: skip


def ensure_wrk() -> str:
    """The path of ``wrk``; installs the Debian package when it is missing (``apt-get update`` if needed)."""
    found = shutil.which("wrk")
    if found:
        return found
    apt = shutil.which("apt-get")
    if apt is None:
        raise BenchmarkError("wrk is not installed and there is no apt-get to install it; install wrk first")
    print("wrk is missing: apt-get install -y wrk", flush=True)
    if _apt(apt, "install", "-y", "wrk") != 0:
        print("install failed: apt-get update, then try again", flush=True)
        _apt(apt, "update")
        if _apt(apt, "install", "-y", "wrk") != 0:
            raise BenchmarkError("apt-get install -y wrk failed; install wrk by hand and run again")
    found = shutil.which("wrk")
    if found is None:
        raise BenchmarkError("apt-get installed wrk but it is not on PATH")
    return found


def _apt(apt: str, *args: str) -> int:
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        return subprocess.run([apt, *args], env=env, timeout=600, check=False).returncode
    except subprocess.TimeoutExpired:
        return -1


_LUA_POST = """\
-- Written by benchmarks/_harness.py: POST the same JSON body on every request.
local file = assert(io.open({path}, "rb"))
wrk.method = "POST"
wrk.body = file:read("*a")
file:close()
wrk.headers["Content-Type"] = "application/json"
"""


def write_post_script(name: str, body: bytes, headers: Mapping[str, str] | None = None) -> Path:
    """A wrk Lua script that POSTs ``body`` (kept next to it in ``.work/wrk/``), with extra ``headers``."""
    directory = WORK_DIR / "wrk"
    directory.mkdir(parents=True, exist_ok=True)
    body_path = directory / f"{name}.json"
    body_path.write_bytes(body)
    script = directory / f"{name}.lua"
    # A JSON string literal of a plain path is also a valid Lua string literal.
    extra = "".join(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n" for k, v in (headers or {}).items())
    script.write_text(_LUA_POST.format(path=json.dumps(str(body_path))) + extra, encoding="utf-8")
    return script


def run_wrk(
    url: str,
    script: Path,
    *,
    connections: int,
    threads: int,
    duration_s: float,
    warmup_s: float,
    timeout_s: float = 5.0,
) -> WrkResult:
    """A warm-up run of ``warmup_s`` then the measured run of ``duration_s``, both with the same settings."""
    wrk = ensure_wrk()

    def once(seconds: float) -> str:
        argv = [
            wrk, f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", f"--timeout={timeout_s:g}s",
            "--latency", "-s", str(script), url,
        ]  # fmt: skip
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BenchmarkError(f"wrk did not finish within {seconds + 60:.0f} s") from exc
        if done.returncode != 0:
            raise BenchmarkError(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
        return done.stdout

    if warmup_s > 0:
        once(warmup_s)
    return parse_wrk(once(duration_s), threads=threads, connections=connections, duration_s=duration_s)


# --- environments and machine info ---------------------------------------------------------------------


def ensure_venv(name: str, requirements: Sequence[str], *, timeout_s: float = 1200.0) -> Path:
    """The Python of ``.venvs/<name>``, created with uv on first use; reused while its requirements match."""
    uv = shutil.which("uv")
    if uv is None:
        raise BenchmarkError("uv is not installed; it creates the peers' virtual environments")
    venv = VENVS_DIR / name
    python = venv / "bin" / "python"
    marker = venv / "benchmark-requirements.txt"
    wanted = "\n".join(requirements) + "\n"
    if python.exists() and marker.exists() and marker.read_text(encoding="utf-8") == wanted:
        return python
    print(f"preparing {venv.relative_to(HERE.parent)} ({', '.join(requirements)}); this happens once", flush=True)
    steps = [[uv, "pip", "install", "--quiet", "--python", str(python), *requirements]]
    if not python.exists():
        version = f"{sys.version_info.major}.{sys.version_info.minor}"  # the pickles' Python
        steps.insert(0, [uv, "venv", "--quiet", "--python", version, str(venv)])
    for argv in steps:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired as exc:
            raise BenchmarkError(f"{' '.join(argv[:3])} took longer than {timeout_s:.0f} s") from exc
        if done.returncode != 0:
            raise BenchmarkError(f"{' '.join(argv[:3])} failed:\n{done.stderr.strip()[-2000:]}")
    marker.write_text(wanted, encoding="utf-8")
    return python


def package_versions(names: Iterable[str], python: Path | None = None) -> dict[str, str | None]:
    """Installed versions of ``names`` in this interpreter, or in the one at ``python``."""
    names = list(names)
    if python is None:
        versions: dict[str, str | None] = {}
        for name in names:
            try:
                versions[name] = importlib.metadata.version(name)
            except importlib.metadata.PackageNotFoundError:
                versions[name] = None
        return versions
    code = (
        "import importlib.metadata as m, json, sys\n"
        "def v(n):\n"
        "    try:\n        return m.version(n)\n"
        "    except m.PackageNotFoundError:\n        return None\n"
        "print(json.dumps({n: v(n) for n in sys.argv[1:]}))\n"
    )
    done = subprocess.run([str(python), "-c", code, *names], capture_output=True, text=True, timeout=120, check=True)
    result: dict[str, str | None] = json.loads(done.stdout)
    return result


def machine_info() -> dict[str, Any]:
    """Cores, CPU model, load and interpreter: what a reader needs to judge numbers from a shared machine."""
    cpu_model = None
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return {
        "cores": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_model": cpu_model,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
    }


@dataclass(slots=True)
class Row:
    """One line of a benchmark's table: a measurement, or the reason there is none."""

    server: str
    rows: int
    concurrency: int | None  # None: called in process
    p50_ms: float | None = None
    p99_ms: float | None = None
    rps: float | None = None
    requests: int | None = None
    errors: int | None = None
    status: str = "ok"  # ok, skipped: <why>, failed: <why>
    ratios: dict[str, float] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# --- CPU time of processes we started ------------------------------------------------------------------


def group_cpu_s(pgid: int) -> float:
    """User + system CPU seconds used so far by the live processes of process group ``pgid`` and their
    descendants (Linux ``/proc``).

    A ``Server`` leads a group of its own, so this counts a server and every worker it forked or spawned, also
    one that left for a session of its own (the prediction log's shipper does): a figure per request that,
    unlike requests/s, does not move when another tenant takes the machine's cores.
    """
    ticks = os.sysconf("SC_CLK_TCK")
    processes: dict[int, tuple[int, int, int]] = {}  # pid: parent, group, CPU ticks
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:  # the process ended while we looked
            continue
        fields = stat.rsplit(")", 1)[1].split()  # after "pid (comm)", which may hold spaces
        processes[int(entry.name)] = (int(fields[1]), int(fields[2]), int(fields[11]) + int(fields[12]))
    counted = {pid for pid, (_, group, _) in processes.items() if group == pgid}
    while more := {pid for pid, (parent, _, _) in processes.items() if parent in counted} - counted:
        counted |= more
    return sum(processes[pid][2] for pid in counted) / ticks

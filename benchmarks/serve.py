"""Model server benchmark: Legion's server against the bare model call, a minimal server and its peers.

Run ``python benchmarks/serve.py [--peers] [--duration SECONDS] [--quick]`` from the repository root.

One run trains the census income pipeline of ``examples/census_income/train.py`` once and measures that
same fitted pipeline, on loopback, in every form:

(a) in process, no HTTP: the Legion endpoint's ``predict`` on a ``Table`` (the model loaded from the Legion
    model directory), the raw ``pipeline.predict_proba(DataFrame)``, and the minimal app's whole
    per-request work (orjson in, DataFrame, predict_proba, orjson out); p50 and p99 per call;
(b) ``benchmarks/minimal_app.py``: a raw ASGI app on uvicorn (one worker, httptools, uvloop, no access
    log) answering the era-b body ``{"columns": [...], "data": [[...]]}``: the floor for any Python server;
(c) ``legion serve MODEL_DIR --host 127.0.0.1 --port 0 --workers 1``: the real model server, on
    ``POST /api/model/invoke`` with the same body (``/invoke/<endpoint>`` if the model's ``predict_proba``
    is not its default endpoint); skipped, and said so, while the command does not exist;
with ``--peers``: ``mlflow models serve`` (``--env-manager local``, one worker, ``dataframe_split`` on
``/invocations``) and Seldon MLServer with ``mlserver-sklearn`` (OIP V2 ``infer`` with the pandas codec, one
input per column), without and with adaptive batching; ``_peers.py`` says how each is set up.

Method. Requests are real rows of the training data (the first rows without missing values): 1 row and 100
rows. HTTP servers run one at a time, each bound to 127.0.0.1; each answers one request first and the shape
of its answer is checked, then wrk (``--latency``, one thread for concurrency 1, two threads and 32
connections for concurrency 32) runs a short warm-up and then the measured run. p50/p99 come from wrk's
latency distribution, requests/s from its total. Ratios are computed within the same run: ``p50/b`` and
``rps/b`` against the minimal app at the same rows and concurrency, ``p50/a`` against the Legion endpoint in
process at the same rows. The machine has few cores and is shared: wrk competes with the server for CPU, so
compare ratios from one run rather than absolute numbers across runs.

Results: a table on stdout and ``benchmarks/results/serve-<UTC time>.json`` (settings, machine, package
versions, every row, the targets). Work files go to ``benchmarks/.work/`` (server logs in ``logs/``).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import operator
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any

import joblib
import orjson
import pandas as pd
from _harness import (
    HOST,
    RESULTS_DIR,
    UVICORN_PORT,
    WORK_DIR,
    BenchmarkError,
    Row,
    Server,
    ServerStartError,
    Target,
    ensure_wrk,
    machine_info,
    package_versions,
    post_json,
    run_wrk,
    start_server,
    time_calls,
    write_post_script,
)
from _peers import (
    MLFLOW,
    MLSERVER,
    MLSERVER_ADAPTIVE,
    PINNED,
    answer_shape,
    frame_rows,
    mlflow_target,
    mlserver_target,
)
from minimal_app import MinimalApp
from rich.console import Console
from rich.table import Table as RichTable

from legion.model import LoadedModel, Table, TypedEndpoint, load_model

REPO = Path(__file__).resolve().parent.parent
EXAMPLE = REPO / "examples" / "census_income" / "train.py"
ROW_COUNTS = (1, 100)
CONCURRENCY = (1, 32)
LEGION_READY = "/v2/health/ready"
LEGION_INVOKE = "/api/model/invoke"
LEGION_PORT = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
MAIN_PACKAGES = (*PINNED, "legion", "uvicorn", "uvloop", "httptools", "orjson", "starlette", "cloudpickle")
MINIMAL = "minimal app (b)"
LEGION = "legion serve (c)"
IN_PROCESS_ENDPOINT = "legion endpoint (a)"


@dataclass(frozen=True, slots=True)
class RunSettings:
    duration_s: float
    warmup_s: float
    in_process_s: float
    startup_deadline_s: float
    peers: bool


@dataclass(slots=True)
class Census:
    """The fitted pipeline, where it was saved, and the request rows."""

    pipeline: Any
    model_dir: Path
    joblib_path: Path
    frames: dict[int, pd.DataFrame]
    endpoint: str  # the Legion endpoint that calls predict_proba (the default one if none does)
    legion_path: str  # where the server invokes it: /api/model/invoke for the default endpoint
    legion_width: int  # values per row that endpoint answers
    width: int  # values per row predict_proba answers: one per class


# --- the model -----------------------------------------------------------------------------------------


def load_example() -> ModuleType:
    """``examples/census_income/train.py`` as a module (the examples are scripts, not a package)."""
    if not EXAMPLE.exists():
        raise BenchmarkError(f"{EXAMPLE.relative_to(REPO)} is missing: the benchmark measures that model")
    spec = importlib.util.spec_from_file_location("census_income_train", EXAMPLE)
    if spec is None or spec.loader is None:
        raise BenchmarkError(f"cannot import {EXAMPLE}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def prepare_census() -> Census:
    example = load_example()
    print("training the census pipeline with examples/census_income/train.py", flush=True)
    features, labels = example.load_data()
    pipeline = example.train(features, labels)
    model_dir = Path(example.export(pipeline, features, WORK_DIR / "census-model"))
    joblib_path = WORK_DIR / "census.joblib"
    joblib.dump(pipeline, joblib_path)
    complete = features.dropna().reset_index(drop=True)
    frames = {n: complete.head(n) for n in ROW_COUNTS}
    model = load_model(model_dir)
    endpoint = proba_endpoint(model)
    path = LEGION_INVOKE if endpoint == model.endpoint(None).name else f"{LEGION_INVOKE}/{endpoint}"
    answer = typed_endpoint(model, endpoint).predict(Table.from_frame(frames[1]))
    return Census(
        pipeline, model_dir, joblib_path, frames, endpoint, legion_path=path,
        legion_width=len(answer.columns) if isinstance(answer, Table) else 0, width=len(pipeline.classes_),
    )  # fmt: skip


def typed_endpoint(model: LoadedModel, name: str) -> TypedEndpoint:
    endpoint = model.endpoint(name)
    if not isinstance(endpoint, TypedEndpoint):
        raise BenchmarkError(f"the census model's endpoint {name!r} has no column signature")
    return endpoint


def proba_endpoint(model: LoadedModel) -> str:
    """The endpoint whose model call is ``predict_proba``, as in the minimal app and the peers."""
    for name, endpoint in model.endpoints.items():
        if endpoint.spec.method == "predict_proba":
            return name
    return model.endpoint(None).name


def legion_body(frame: pd.DataFrame) -> bytes:
    return orjson.dumps({"columns": list(frame.columns), "data": frame_rows(frame)})


def legion_answer(answer: Any) -> tuple[int, int]:
    return answer_shape(answer["prediction"])


# --- (a) in process ------------------------------------------------------------------------------------


def measure_in_process(census: Census, settings: RunSettings) -> list[Row]:
    model = load_model(census.model_dir)
    endpoint = typed_endpoint(model, census.endpoint)
    app = MinimalApp(joblib.load(census.joblib_path))
    rows = []
    for count, frame in census.frames.items():
        table = Table.from_frame(frame)
        body = legion_body(frame)
        calls: dict[str, Callable[[], object]] = {
            IN_PROCESS_ENDPOINT: lambda table=table: endpoint.predict(table),
            "pipeline.predict_proba": lambda frame=frame: census.pipeline.predict_proba(frame),
            "minimal handler, no HTTP": lambda body=body: app.predict_body(body),
        }
        for name, call in calls.items():
            latency = time_calls(call, min_calls=100, min_seconds=settings.in_process_s)
            rows.append(Row(name, count, None, latency.p50_ms, latency.p99_ms, requests=latency.calls))
            print(f"  in process  {name:28} {count:>3} rows  p50 {latency.p50_ms:7.2f} ms", flush=True)
    return rows


# --- (b), (c) and the peers ----------------------------------------------------------------------------


def minimal_target(census: Census, settings: RunSettings) -> Target:
    argv = [sys.executable, str(Path(__file__).with_name("minimal_app.py")), "--model", str(census.joblib_path)]

    def start() -> Server:
        return start_server(
            "minimal", argv, ready_path="/health", port_pattern=UVICORN_PORT, deadline_s=settings.startup_deadline_s
        )

    setup = "benchmarks/minimal_app.py: raw ASGI on uvicorn, 1 worker, httptools, uvloop, no access log"
    return Target(MINIMAL, "/invoke", start, legion_body, legion_answer, census.width, setup)


def legion_command() -> str | None:
    """``legion`` next to this interpreter, when it has a ``serve`` command."""
    legion = shutil.which("legion", path=str(Path(sys.executable).parent))
    if legion is None:
        return None
    try:
        done = subprocess.run([legion, "serve", "--help"], capture_output=True, timeout=60, check=False)
    except subprocess.TimeoutExpired:
        return None
    return legion if done.returncode == 0 else None


def legion_target(census: Census, settings: RunSettings, legion: str) -> Target:
    argv = [legion, "serve", str(census.model_dir), "--host", HOST, "--port", "0", "--workers", "1"]

    def start() -> Server:
        return start_server(
            "legion", argv, ready_path=LEGION_READY, port_pattern=LEGION_PORT, deadline_s=settings.startup_deadline_s
        )

    setup = " ".join(["legion", *argv[1:]])
    return Target(LEGION, census.legion_path, start, legion_body, legion_answer, census.legion_width, setup)


def measure_server(target: Target, census: Census, settings: RunSettings) -> list[Row]:
    """Start the server, check one answer per row count, run wrk for every rows x concurrency; stop it."""
    print(f"{target.name}: starting", flush=True)
    started = time.monotonic()
    try:
        server = target.start()
    except (ServerStartError, BenchmarkError, OSError) as exc:
        print(f"{target.name}: FAILED to start: {exc}", flush=True)
        return _rows_with_status(target.name, f"failed: {str(exc).splitlines()[0]}")
    rows = []
    try:
        print(f"{target.name}: ready in {time.monotonic() - started:.1f} s on port {server.port}", flush=True)
        url = server.url(target.path)
        for count, frame in census.frames.items():
            body = target.encode(frame)
            try:
                shape = target.answer_shape(post_json(url, body))
            except (BenchmarkError, OSError, KeyError, IndexError, TypeError, ValueError) as exc:
                print(f"{target.name}: wrong answer for {count} rows: {exc}", flush=True)
                rows += [Row(target.name, count, c, status=f"failed: {exc}"[:300]) for c in CONCURRENCY]
                continue
            if shape != (count, target.width):
                status = f"failed: answered shape {shape}, expected ({count}, {target.width})"
                rows += [Row(target.name, count, c, status=status) for c in CONCURRENCY]
                continue
            script = write_post_script(f"{server.name}-{count}", body)
            for concurrency in CONCURRENCY:
                rows.append(_wrk_row(target.name, url, script, count=count, concurrency=concurrency, settings=settings))
    finally:
        server.stop()
    return rows


def _wrk_row(name: str, url: str, script: Path, *, count: int, concurrency: int, settings: RunSettings) -> Row:
    try:
        result = run_wrk(
            url, script, connections=concurrency, threads=1 if concurrency == 1 else 2,
            duration_s=settings.duration_s, warmup_s=settings.warmup_s,
        )  # fmt: skip
    except BenchmarkError as exc:
        return Row(name, count, concurrency, status=f"failed: {exc}"[:300])
    print(
        f"  {name:22} {count:>3} rows c{concurrency:<2}  p50 {result.p50_ms:7.2f} ms  p99 {result.p99_ms:7.2f} ms"
        f"  {result.rps:8.1f} req/s  errors {result.errors}",
        flush=True,
    )
    status = "ok" if result.errors == 0 else f"ok, {result.errors} errors"
    return Row(name, count, concurrency, result.p50_ms, result.p99_ms, result.rps, result.requests, result.errors,
               status)  # fmt: skip


def _rows_with_status(name: str, status: str) -> list[Row]:
    return [Row(name, count, c, status=status) for count in ROW_COUNTS for c in CONCURRENCY]


# --- ratios, targets, report ---------------------------------------------------------------------------


def add_ratios(rows: list[Row]) -> None:
    """``p50/b`` and ``rps/b`` against the minimal app, ``p50/a`` against the Legion endpoint in process."""
    minimal = {(r.rows, r.concurrency): r for r in rows if r.server == MINIMAL and r.p50_ms}
    in_process = {r.rows: r for r in rows if r.server == IN_PROCESS_ENDPOINT and r.p50_ms}
    for row in rows:
        if row.concurrency is None or row.p50_ms is None:
            continue
        base = minimal.get((row.rows, row.concurrency))
        if base is not None and base.p50_ms and base.rps:
            row.ratios["p50/b"] = row.p50_ms / base.p50_ms
            row.ratios["rps/b"] = (row.rps or 0.0) / base.rps
        if row.rows in in_process and in_process[row.rows].p50_ms:
            row.ratios["p50/a"] = row.p50_ms / (in_process[row.rows].p50_ms or 1.0)


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    measured: str
    verdict: str  # PASS, MISS, n/a


def _verdict(
    target: str, value: float | None, test: Callable[[float, float], bool], limit: float, unit: str
) -> Verdict:
    if value is None:
        return Verdict(target, "not measured", "n/a")
    return Verdict(target, f"{value:.2f}{unit}", "PASS" if test(value, limit) else "MISS")


def _ratio(left: Row | None, right: Row | None, attr: str) -> float | None:
    if left is None or right is None or not getattr(right, attr):
        return None
    value: float = getattr(left, attr) / getattr(right, attr)
    return value


def check_targets(rows: list[Row], peers: bool) -> list[Verdict]:
    """Legion's server against its goals, all at 1 row: c1 latency and c32 throughput and tail."""
    measured = {(r.server, r.rows, r.concurrency): r for r in rows if r.p50_ms is not None}
    c1, b1 = measured.get((LEGION, 1, 1)), measured.get((MINIMAL, 1, 1))
    c32, b32 = measured.get((LEGION, 1, 32)), measured.get((MINIMAL, 1, 32))
    verdicts = [
        _verdict("1 row c1: p50(c) ≤ 1.15 × p50(b)", _ratio(c1, b1, "p50_ms"), operator.le, 1.15, "×"),
        _verdict("1 row c32: rps(c) ≥ 6 × rps(b)", _ratio(c32, b32, "rps"), operator.ge, 6.0, "×"),
        _verdict("1 row c32: p99(c) < 50 ms", c32.p99_ms if c32 else None, operator.lt, 50.0, " ms"),
    ]
    if peers:
        mlflow, adaptive = measured.get((MLFLOW, 1, 32)), measured.get((MLSERVER_ADAPTIVE, 1, 32))
        verdicts += [
            _verdict("1 row c32: rps(c) ≥ 10 × MLflow", _ratio(c32, mlflow, "rps"), operator.ge, 10.0, "×"),
            _verdict("1 row c32: rps(c) ≥ 1.5 × MLServer adaptive", _ratio(c32, adaptive, "rps"), operator.ge, 1.5,
                     "×"),
        ]  # fmt: skip
    return verdicts


def _fmt(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:,.{digits}f}"


def _short(status: str, width: int = 40) -> str:
    return status if len(status) <= width else status[: width - 1] + "…"


def print_report(console: Console, rows: list[Row], verdicts: list[Verdict]) -> None:
    table = RichTable(title="census pipeline: in process (a), minimal app (b), legion serve (c), peers")
    for header in ("server", "rows", "conc", "p50 ms", "p99 ms", "req/s", "p50/b", "rps/b", "p50/a", "status"):
        table.add_column(header, justify="left" if header in ("server", "status") else "right")
    for row in rows:
        table.add_row(
            row.server, str(row.rows), "in-proc" if row.concurrency is None else str(row.concurrency),
            _fmt(row.p50_ms), _fmt(row.p99_ms), _fmt(row.rps, 0), _fmt(row.ratios.get("p50/b")),
            _fmt(row.ratios.get("rps/b")), _fmt(row.ratios.get("p50/a")), _short(row.status),
        )  # fmt: skip
    console.print(table)
    problems = sorted({(row.server, row.status) for row in rows if not row.status.startswith("ok")})
    for server, status in problems:
        console.print(f"{server}: {status}", markup=False)
    targets = RichTable(title="targets")
    for header in ("target", "measured", "verdict"):
        targets.add_column(header)
    for verdict in verdicts:
        targets.add_row(verdict.target, verdict.measured, verdict.verdict)
    console.print(targets)
    console.print("a = Legion endpoint in process, b = minimal app; same rows (and concurrency for b).")


# --- main ----------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> RunSettings:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", action="store_true", help="also measure MLflow and MLServer (slow first time)")
    parser.add_argument("--duration", type=float, help="seconds per measured wrk run (default 15, quick 3)")
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not a measurement")
    args = parser.parse_args(argv)
    duration = args.duration or (3.0 if args.quick else 15.0)
    if duration < 1:
        parser.error("--duration must be at least 1 second")
    return RunSettings(
        duration_s=duration,
        warmup_s=1.0 if args.quick else min(3.0, max(1.0, duration / 5)),
        in_process_s=0.5 if args.quick else min(5.0, max(1.0, duration / 3)),
        startup_deadline_s=180.0,
        peers=args.peers,
    )


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(argv)
    console = Console(width=max(Console().width, 150))  # the table is wide; never squeeze it under a pipe
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    try:
        ensure_wrk()
        census = prepare_census()
    except BenchmarkError as exc:
        console.print(f"Error: {exc}", markup=False)
        return 1
    print("(a) in process", flush=True)
    rows = measure_in_process(census, settings)
    targets = http_targets(census, settings, rows)
    for target in targets:
        rows += measure_server(target, census, settings)
    add_ratios(rows)
    verdicts = check_targets(rows, settings.peers)
    print_report(console, rows, verdicts)
    path = save_results(started_at, settings, targets, rows, verdicts)
    console.print(f"saved {path.relative_to(REPO)}")
    return 0


def http_targets(census: Census, settings: RunSettings, rows: list[Row]) -> list[Target]:
    """(b), (c) when ``legion serve`` exists, and the peers when asked; what cannot run gets rows saying why."""
    targets = [minimal_target(census, settings)]
    legion = legion_command()
    if legion is not None:
        targets.append(legion_target(census, settings, legion))
    else:
        print(f"{LEGION}: skipped, `legion serve` does not exist yet", flush=True)
        rows += _rows_with_status(LEGION, "skipped: `legion serve` does not exist yet")
    if not settings.peers:
        return targets
    common = {"width": census.width, "deadline_s": settings.startup_deadline_s}
    sample = census.frames[max(ROW_COUNTS)]
    peers: list[tuple[str, Callable[[], Target]]] = [
        (MLFLOW, partial(mlflow_target, census.joblib_path, sample, **common)),
        (MLSERVER, partial(mlserver_target, census.joblib_path, adaptive=False, **common)),
        (MLSERVER_ADAPTIVE, partial(mlserver_target, census.joblib_path, adaptive=True, **common)),
    ]
    for name, make in peers:
        try:
            targets.append(make())
        except (BenchmarkError, subprocess.SubprocessError, OSError) as exc:
            detail = getattr(exc, "stderr", None) or exc
            print(f"{name}: FAILED to prepare: {detail}", flush=True)
            rows += _rows_with_status(name, f"failed: {str(exc).splitlines()[0]}"[:300])
    return targets


def save_results(
    started_at: datetime, settings: RunSettings, targets: list[Target], rows: list[Row], verdicts: list[Verdict]
) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"serve-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    document = {
        "benchmark": "serve",
        "started_at": started_at.isoformat(),
        "finished_at": datetime.now(UTC).isoformat(),
        "settings": {
            "duration_s": settings.duration_s,
            "warmup_s": settings.warmup_s,
            "in_process_s": settings.in_process_s,
            "peers": settings.peers,
            "rows": list(ROW_COUNTS),
            "concurrency": list(CONCURRENCY),
            "wrk_threads": {"1": 1, "32": 2},
        },
        "machine": machine_info(),
        "versions": {"main": package_versions(MAIN_PACKAGES)} | {t.name: t.versions for t in targets if t.versions},
        "servers": {t.name: {"path": t.path, "setup": t.setup} for t in targets},
        "rows": [row.to_json() for row in rows],
        "targets": [{"target": v.target, "measured": v.measured, "verdict": v.verdict} for v in verdicts],
    }
    path.write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return path


if __name__ == "__main__":
    sys.exit(main())

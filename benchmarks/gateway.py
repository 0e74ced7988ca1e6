"""Gateway benchmark: what ``legion gateway`` adds to a model call, against calling the model server directly.

Run ``python benchmarks/gateway.py [--rounds N] [--duration SECONDS] [--concurrency 1|32] [--quick]`` from the
repository root.

One run trains the census income pipeline (``examples/census_income/train.py``, as ``serve.py`` does), starts ONE
``legion serve MODEL_DIR --workers 1`` and, in front of it, every proxy to compare (all started up front, each
checked to answer a real prediction), then measures requests of one real row on loopback:

- ``direct``: wrk straight to the model server, ``POST /api/model/invoke``;
- ``gateway``: ``legion gateway`` (routing from a file naming that same server, a model token checked on every
  request, access log on, one worker), ``POST /model/census/api/model/invoke``: the shipped default;
- the alternatives, to choose by the numbers: the gateway without its access log; with two workers; HAProxy
  (Debian's ``haproxy``, 2.5 or later) configured from the same routing table by ``_haproxy.haproxy_config``,
  checking the HS256 token with its ``jwt_verify`` (skipped, with the reason printed, when it is missing);
- with ``--baseline DIR`` (repeatable): the gateway of another checkout (``DIR`` put first on ``PYTHONPATH``, and
  checked to be the ``legion`` that runs),
  e.g. ``main`` before a change, for an A/B within the same run;
- in process, the two upstream clients the gateway could use, each calling the model server one request at a
  time: httpx's ``AsyncClient`` and the gateway's own ``UpstreamPool`` (p50 per call).

The machine has two cores shared by wrk, the proxy and the model server, and other tenants come and go, so one
run of each is not enough. The runs are interleaved, ``direct`` between every two variants, for ``--rounds``
rounds (the variants in reverse order every other round) and both concurrencies (wrk ``-t1 -c1`` and ``-t2
-c32``, a short warm-up before each measured run). Each
variant's run is compared with the mean of the ``direct`` runs just before and just after it, and the table
gives the median of those ratios over the rounds and their spread (lowest, highest). Beside requests/s it gives
figures that the neighbours' load moves much less: the proxy's CPU milliseconds per request (user + system of
its whole process group, from ``/proc``), the model server's CPU milliseconds per request and the rows per model
call (from its ``/metrics``), which say how well the server still merges concurrent requests behind a proxy.

Targets (medians over the rounds): the gateway adds ≤ 0.5 ms to p50 at concurrency 1 and keeps ≥ 70 % of the
direct requests/s at concurrency 32; prediction logging costs ≤ 5 % of requests/s at concurrency 32 (the
gateway's runs with and without it paired within each round: ``logging_ratios``; shown with a bootstrap 95 %
interval, since one round's ratio varies by a few per cent on a shared machine).

Results: a table on stdout and ``benchmarks/results/gateway-<UTC time>.json`` (every run, and the summary).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import operator
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _haproxy import haproxy_binary, haproxy_config
from _harness import (
    HOST,
    RESULTS_DIR,
    WORK_DIR,
    BenchmarkError,
    Server,
    ServerStartError,
    ensure_wrk,
    free_port,
    group_cpu_s,
    http_request,
    machine_info,
    median_interval,
    package_versions,
    percentile,
    post_json,
    run_wrk,
    start_server,
    write_post_script,
)
from rich.console import Console
from rich.table import Table as RichTable
from serve import LEGION_READY, Census, legion_body, legion_command, prepare_census

from legion.core.tokens import ModelScope, TokenConfig, TokenIssuer
from legion.gateway.upstream import UpstreamPool
from legion.model.manifest import Manifest

REPO = Path(__file__).resolve().parent.parent
CONCURRENCY = (1, 32)
GATEWAY_PORT = re.compile(r"listening on http://127\.0\.0\.1:(\d+)")
SECRET = "benchmark-only-" + "b" * 49
DIRECT, GATEWAY = "direct", "gateway"
NO_LOG, TWO_WORKERS, HAPROXY = "gateway, no access log", "gateway, 2 workers", "haproxy 1 thread, jwt"
NO_PREDICTION_LOG = "gateway, no prediction log"
VARIANTS = (GATEWAY, NO_PREDICTION_LOG, NO_LOG, TWO_WORKERS, HAPROXY)
PREDICTION_LOG_COST = 0.05  # issue 5: logging predictions may cost at most 5 % of requests/s at c32
PACKAGES = ("legion", "uvicorn", "uvloop", "httptools", "httpx", "orjson", "pyjwt", "prometheus-client")
BATCH_ROWS = re.compile(r"^legion_model_batch_rows_(sum|count)\{[^}]*\} ([0-9.e+]+)$", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class RunSettings:
    duration_s: float
    warmup_s: float
    rounds: int
    calls: int
    baselines: tuple[Path, ...] = ()
    startup_deadline_s: float = 180.0
    serve_env: tuple[tuple[str, str], ...] = ()
    """Variables for the model server (``LEGION_SERVE_*`` settings to compare across runs)."""
    only: frozenset[str] = frozenset()
    """Variants to measure (empty: all); ``direct`` and ``--baseline`` always run."""
    concurrency: tuple[int, ...] = CONCURRENCY
    """The wrk concurrencies to measure at (the targets of the others are left out)."""

    def wants(self, name: str) -> bool:
        return not self.only or name in self.only


@dataclass(slots=True)
class Proxy:
    """A running variant in front of the model server: where to send requests, and its server for CPU time."""

    name: str
    url: str
    headers: dict[str, str]
    server: Server | None  # None: direct (the model server itself)
    setup: str


@dataclass(slots=True)
class Run:
    """One measured wrk run of one variant."""

    target: str
    concurrency: int
    round: int
    p50_ms: float
    p99_ms: float
    rps: float
    requests: int
    errors: int
    proxy_cpu_ms_per_request: float | None  # None for direct
    model_cpu_ms_per_request: float
    model_rows_per_call: float | None
    rps_ratio: float | None = None  # against the mean of the direct runs before and after
    added_p50_ms: float | None = None


@dataclass(slots=True)
class Summary:
    """Medians over the rounds of one variant at one concurrency."""

    target: str
    concurrency: int
    rounds: int
    p50_ms: float
    p99_ms: float
    rps: float
    rps_ratio: float | None = None
    rps_ratio_min: float | None = None
    rps_ratio_max: float | None = None
    added_p50_ms: float | None = None
    added_p50_ms_min: float | None = None
    added_p50_ms_max: float | None = None
    proxy_cpu_ms_per_request: float | None = None
    model_cpu_ms_per_request: float | None = None
    model_rows_per_call: float | None = None
    errors: int = 0
    status: str = "ok"


@dataclass(slots=True)
class Outcome:
    proxies: dict[str, str] = field(default_factory=dict)  # name -> setup, or "skipped: why" / "failed: why"
    runs: list[Run] = field(default_factory=list)
    clients: list[dict[str, Any]] = field(default_factory=list)


def model_token(model: Manifest) -> str:
    scope = ModelScope(model.name, model.version)
    signed, _ = TokenIssuer(TokenConfig(secret=SECRET)).issue("bench", "legion-model-api", 3600, models=[scope])
    return signed


def routing_document(model_url: str, model: Manifest) -> dict[str, Any]:
    return {"etag": "bench", "deployments": [
        {"id": "census", "state": "Ready", "minReplicas": 1, "endpoints": [model_url], "modelName": model.name,
         "modelVersion": model.version}]}  # fmt: skip


def file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", name).strip("-")


def start_gateway(name: str, argv: list[str], routing: dict[str, Any], *extra: str,
                  env: dict[str, str] | None = None, deadline_s: float = 180.0) -> Server:  # fmt: skip
    path = WORK_DIR / f"{file_name(name)}-routing.json"
    path.write_text(json.dumps(routing), encoding="utf-8")
    argv = [*argv, "gateway", "--host", HOST, "--port", "0", "--routing-file", str(path), *extra]
    env = {"LEGION_GATEWAY_TOKEN_SECRET": SECRET, **(env or {})}
    return start_server(file_name(name), argv, ready_path="/healthcheck", port_pattern=GATEWAY_PORT, env=env,
                        deadline_s=deadline_s)  # fmt: skip


@functools.cache  # checked once when the arguments are read, used when the gateways start
def baseline_command(checkout: Path) -> tuple[list[str], dict[str, str]]:
    """The command and environment that run ``legion`` from ``checkout`` (its directory first on ``PYTHONPATH``).

    ``-P``: without it, ``python -m`` puts the working directory first on ``sys.path``, so a benchmark started from
    this repository would run this repository's gateway under the baseline's name (it did, until this check)."""
    src = str(checkout.resolve())
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [src, os.environ.get("PYTHONPATH")]))}
    argv = [sys.executable, "-P", "-m", "legion"]
    which = [sys.executable, "-P", "-c", "import legion; print(legion.__file__)"]
    found = subprocess.run(which, env={**os.environ, **env}, capture_output=True, text=True, check=False).stdout.strip()
    if not found.startswith(src + os.sep):
        raise BenchmarkError(f"--baseline {checkout}: `legion` resolves to {found or 'nothing'}, not to that checkout")
    return argv, env


def start_haproxy(binary: str, routing: dict[str, Any]) -> Server:
    port = free_port()  # HAProxy cannot be given port 0 and tell us which one it got
    config = WORK_DIR / "haproxy.cfg"
    config.write_text(haproxy_config(routing, host=HOST, port=port, secret=SECRET), encoding="utf-8")
    return start_server("haproxy", [binary, "-f", str(config), "-db"], ready_path="/healthcheck", port=port,
                        deadline_s=30)  # fmt: skip


def post_json_with(url: str, body: bytes, headers: dict[str, str]) -> Any:
    if not headers:
        return post_json(url, body)
    answer = httpx.post(url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=30)
    if answer.status_code != 200:
        raise BenchmarkError(f"POST {url} answered {answer.status_code}: {answer.text[:300]}")
    return answer.json()


async def time_clients(model_url: str, body: bytes, calls: int) -> list[dict[str, Any]]:
    """p50 per call of the two upstream clients, one request at a time to the model server."""
    path = b"/api/model/invoke"
    pool = UpstreamPool(model_url, connect_timeout_s=5, max_idle=4, idle_timeout_s=60)
    headers = [(b"content-type", b"application/json")]

    async def lean() -> None:
        answer = await pool.request(b"POST", path, headers, body, 30)
        assert answer.status == 200

    async with httpx.AsyncClient(base_url=model_url, timeout=30) as client:

        async def with_httpx() -> None:
            answer = await client.post(path.decode(), content=body, headers={"content-type": "application/json"})
            assert answer.status_code == 200

        rows = []
        for name, call in (("upstream client: httpx", with_httpx), ("upstream client: UpstreamPool", lean)):
            for _ in range(50):
                await call()
            samples = []
            for _ in range(calls):
                started = time.perf_counter_ns()
                await call()
                samples.append((time.perf_counter_ns() - started) / 1e6)
            samples.sort()
            rows.append({"client": name, "p50_ms": percentile(samples, 0.5), "p99_ms": percentile(samples, 0.99),
                         "calls": calls})  # fmt: skip
            print(f"  {name:30} p50 {rows[-1]['p50_ms']:6.3f} ms", flush=True)
    pool.close()
    return rows


# --- measuring -----------------------------------------------------------------------------------------


def batch_rows(model: Server) -> tuple[float, float]:
    """(rows, model calls) the model server has counted so far."""
    status, text = http_request(model.url("/metrics"), timeout_s=10)
    if status != 200:
        return 0.0, 0.0
    found = dict.fromkeys(("sum", "count"), 0.0)
    for match in BATCH_ROWS.finditer(text.decode("utf-8", "replace")):
        found[match.group(1)] += float(match.group(2))
    return found["sum"], found["count"]


def measure_once(proxy: Proxy, model: Server, script: Path, *, concurrency: int, round_: int,
                 settings: RunSettings) -> Run:  # fmt: skip
    threads = 1 if concurrency == 1 else 2
    if settings.warmup_s > 0:
        run_wrk(proxy.url, script, connections=concurrency, threads=threads, duration_s=settings.warmup_s,
                warmup_s=0)  # fmt: skip
    proxy_cpu = group_cpu_s(proxy.server.process.pid) if proxy.server else 0.0
    model_cpu = group_cpu_s(model.process.pid)
    rows, calls = batch_rows(model)
    result = run_wrk(proxy.url, script, connections=concurrency, threads=threads, duration_s=settings.duration_s,
                     warmup_s=0)  # fmt: skip
    model_used = group_cpu_s(model.process.pid) - model_cpu
    proxy_used = group_cpu_s(proxy.server.process.pid) - proxy_cpu if proxy.server else None
    rows_after, calls_after = batch_rows(model)
    count = max(result.requests, 1)
    return Run(
        proxy.name, concurrency, round_, result.p50_ms, result.p99_ms, result.rps, result.requests, result.errors,
        None if proxy_used is None else proxy_used * 1000 / count, model_used * 1000 / count,
        (rows_after - rows) / (calls_after - calls) if calls_after > calls else None,
    )  # fmt: skip


def interleaved(proxies: list[Proxy], model: Server, body: bytes, settings: RunSettings) -> list[Run]:
    """``direct`` between every two variants, every round, both concurrencies; ratios against the neighbours."""
    direct, variants = proxies[0], proxies[1:]
    scripts = {p.name: write_post_script(file_name(p.name), body, p.headers) for p in proxies}
    runs: list[Run] = []
    for round_ in range(1, settings.rounds + 1):
        for concurrency in settings.concurrency:
            order = [direct]
            for variant in variants if round_ % 2 else variants[::-1]:  # no variant always first
                order += [variant, direct]
            previous_direct: Run | None = None
            waiting: list[Run] = []  # variant runs whose next direct run is still to come
            for proxy in order:
                try:
                    run = measure_once(proxy, model, scripts[proxy.name], concurrency=concurrency, round_=round_,
                                       settings=settings)  # fmt: skip
                except BenchmarkError as exc:
                    print(f"  round {round_} {proxy.name} c{concurrency}: failed: {exc}", flush=True)
                    continue
                runs.append(run)
                cpu = "" if run.proxy_cpu_ms_per_request is None else f"  proxy {run.proxy_cpu_ms_per_request:.3f}"
                rows = "" if run.model_rows_per_call is None else f"  rows/call {run.model_rows_per_call:4.1f}"
                print(f"  round {round_} {proxy.name:24} c{concurrency:<2}  p50 {run.p50_ms:6.2f} ms  "
                      f"{run.rps:8.1f} req/s  cpu ms/req: model {run.model_cpu_ms_per_request:.3f}{cpu}{rows}"
                      f"  errors {run.errors}", flush=True)  # fmt: skip
                if proxy is direct:
                    for pending in waiting:
                        compare(pending, [d for d in (previous_direct, run) if d is not None])
                    waiting, previous_direct = [], run
                else:
                    waiting.append(run)
            for pending in waiting:  # the closing direct run failed: compare with the one before
                compare(pending, [previous_direct] if previous_direct else [])
    return runs


def compare(run: Run, directs: list[Run]) -> None:
    if not directs:
        return
    rps = statistics.fmean(d.rps for d in directs)
    p50 = statistics.fmean(d.p50_ms for d in directs)
    run.rps_ratio = run.rps / rps if rps else None
    run.added_p50_ms = run.p50_ms - p50


def summarize(runs: list[Run], names: list[str]) -> list[Summary]:
    summaries = []
    for name in names:
        for concurrency in CONCURRENCY:
            mine = [r for r in runs if r.target == name and r.concurrency == concurrency]
            if not mine:
                continue

            def median(values: list[float | None]) -> float | None:
                present = [v for v in values if v is not None]
                return statistics.median(present) if present else None

            def spread(values: list[float | None], pick: Callable[[list[float]], float]) -> float | None:
                present = [v for v in values if v is not None]
                return pick(present) if present else None

            ratios = [r.rps_ratio for r in mine]
            added = [r.added_p50_ms for r in mine]
            errors = sum(r.errors for r in mine)
            summaries.append(Summary(
                name, concurrency, len(mine), statistics.median(r.p50_ms for r in mine),
                statistics.median(r.p99_ms for r in mine), statistics.median(r.rps for r in mine),
                median(ratios), spread(ratios, min), spread(ratios, max),
                median(added), spread(added, min), spread(added, max),
                median([r.proxy_cpu_ms_per_request for r in mine]), median([r.model_cpu_ms_per_request for r in mine]),
                median([r.model_rows_per_call for r in mine]), errors, "ok" if errors == 0 else f"{errors} errors",
            ))  # fmt: skip
    return summaries


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    measured: str
    verdict: str


def check(summaries: list[Summary], names: list[str], ratios: list[float]) -> list[Verdict]:
    """The targets, by the medians over the rounds, for every variant; ``ratios`` are ``logging_ratios``."""
    by = {(s.target, s.concurrency): s for s in summaries}
    verdicts = []
    for name in names:
        c1, c32 = by.get((name, 1)), by.get((name, 32))
        added = c1.added_p50_ms if c1 else None
        kept = c32.rps_ratio if c32 else None
        for target, value, test, limit, unit in (
            (f"{name}, c1: adds ≤ 0.5 ms to p50", added, operator.le, 0.5, " ms"),
            (f"{name}, c32: keeps ≥ 70 % of direct req/s", kept, operator.ge, 0.7, "×"),
        ):
            if value is None:
                verdicts.append(Verdict(target, "not measured", "n/a"))
            else:
                verdicts.append(Verdict(target, f"{value:.3f}{unit}", "PASS" if test(value, limit) else "MISS"))
    return [*verdicts, logging_verdict(ratios)]


def logging_verdict(ratios: list[float]) -> Verdict:
    """The logging target by the median of ``logging_ratios`` (of one run, or of several pooled), with its interval."""
    target = f"prediction logging, c32: costs ≤ {PREDICTION_LOG_COST:.0%} of req/s (logging on / off)"
    if not ratios:
        return Verdict(target, "not measured", "n/a")
    kept, (low, high) = statistics.median(ratios), median_interval(ratios)
    measured = f"{kept:.3f}× (95 % CI {low:.3f}–{high:.3f}, {len(ratios)} rounds)"
    return Verdict(target, measured, "PASS" if kept >= 1 - PREDICTION_LOG_COST else "MISS")


def logging_ratios(runs: list[Run]) -> list[float]:
    """For each round, the gateway's req/s with prediction logging over its req/s without, at c32; the target is
    their median, shown with its bootstrap interval (``median_interval``).

    Paired within a round (the two runs are one ``direct`` run apart, their order alternating), so the noise of
    the ``direct`` runs does not enter the ratio, as it would in the ratio of their medians against ``direct``."""
    rounds: dict[int, dict[str, float]] = {}
    for run in runs:
        if run.concurrency == 32 and run.target in (GATEWAY, NO_PREDICTION_LOG):
            rounds.setdefault(run.round, {})[run.target] = run.rps
    return [pair[GATEWAY] / pair[NO_PREDICTION_LOG] for pair in rounds.values()
            if len(pair) == 2 and pair[NO_PREDICTION_LOG]]  # fmt: skip


def pooled(paths: list[Path]) -> int:
    """``--pool``: the logging target over the rounds of several saved runs together (one run's 16 rounds leave
    a bootstrap interval about ±3 % wide here); measures nothing."""
    console = Console(width=max(Console().width, 150))
    table = RichTable(title="prediction logging, c32: req/s with logging over without, per round")
    for header in ("run", "rounds", "median", "95 % CI"):
        table.add_column(header)
    every: list[float] = []
    for path in paths:
        try:
            ratios = [float(r) for r in json.loads(path.read_text(encoding="utf-8"))["logging_ratios"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            console.print(f"Error: {path}: not a gateway benchmark result with logging ratios ({exc})", markup=False)
            return 1
        if ratios:
            low, high = median_interval(ratios)
            table.add_row(path.name, str(len(ratios)), f"{statistics.median(ratios):.3f}", f"{low:.3f}–{high:.3f}")
        every += ratios
    if not every:
        console.print("Error: none of these runs measured logging on and off at c32", markup=False)
        return 1
    console.print(table)
    verdict = logging_verdict(every)
    within = sum(r >= 1 - PREDICTION_LOG_COST for r in every)
    console.print(f"{verdict.target}: {verdict.measured}, {within} of {len(every)} rounds within it: "
                  f"{verdict.verdict}", markup=False)  # fmt: skip
    return 0


def _fmt(value: float | None, spec: str) -> str:
    return "" if value is None else format(value, spec)


def report(console: Console, outcome: Outcome, summaries: list[Summary], verdicts: list[Verdict],
           settings: RunSettings) -> None:  # fmt: skip
    table = RichTable(title=f"census pipeline, 1 row, medians over {settings.rounds} interleaved rounds of "
                            f"{settings.duration_s:g} s: direct to legion serve vs through a proxy")  # fmt: skip
    headers = ("target", "conc", "p50 ms", "p99 ms", "req/s", "rps/direct", "(min–max)", "added p50 ms",
               "(min–max)", "proxy cpu ms/req", "model cpu ms/req", "rows/call", "status")  # fmt: skip
    for header in headers:
        table.add_column(header, justify="left" if header in ("target", "status") else "right")
    for s in summaries:
        table.add_row(
            s.target, str(s.concurrency), f"{s.p50_ms:.2f}", f"{s.p99_ms:.2f}", f"{s.rps:,.0f}",
            _fmt(s.rps_ratio, ".2f"),
            "" if s.rps_ratio_min is None else f"{s.rps_ratio_min:.2f}–{s.rps_ratio_max:.2f}",
            _fmt(s.added_p50_ms, "+.3f"),
            "" if s.added_p50_ms_min is None else f"{s.added_p50_ms_min:+.2f}–{s.added_p50_ms_max:+.2f}",
            _fmt(s.proxy_cpu_ms_per_request, ".3f"), _fmt(s.model_cpu_ms_per_request, ".3f"),
            _fmt(s.model_rows_per_call, ".1f"), s.status,
        )  # fmt: skip
    for name, setup in outcome.proxies.items():
        if setup.startswith(("skipped", "failed")):
            table.add_row(name, "", "", "", "", "", "", "", "", "", "", "", setup)
    console.print(table)
    for client in outcome.clients:
        console.print(f"in process, one request at a time: {client['client']}: p50 {client['p50_ms']:.3f} ms")
    targets = RichTable(title="targets (medians over the rounds, against the neighbouring direct runs)")
    for header in ("target", "measured", "verdict"):
        targets.add_column(header)
    for verdict in verdicts:
        targets.add_row(verdict.target, verdict.measured, verdict.verdict)
    console.print(targets)


# --- the run -------------------------------------------------------------------------------------------


def start_proxies(legion: str, model: Server, manifest: Manifest, *, token: dict[str, str], census: Census,
                  settings: RunSettings, outcome: Outcome) -> list[Proxy]:  # fmt: skip
    routing = routing_document(model.url(""), manifest)
    path = f"/model/census{census.legion_path}"
    deadline = settings.startup_deadline_s
    proxies: list[Proxy] = []

    def logs(name: str) -> tuple[str, ...]:  # each gateway its own prediction log, under the work directory
        root = WORK_DIR / "prediction-logs" / file_name(name)
        shutil.rmtree(root, ignore_errors=True)
        return "--log-dir", str(root / "sink"), "--log-buffer-dir", str(root / "buffer")

    gateways: list[tuple[str, list[str], tuple[str, ...], dict[str, str], str]] = [
        (GATEWAY, [legion], logs(GATEWAY), {}, "legion gateway, 1 worker, access log to a file, prediction log"),
        (NO_PREDICTION_LOG, [legion], ("--no-prediction-log",), {},
         "legion gateway, 1 worker, access log to a file, no prediction log"),
        (NO_LOG, [legion], logs(NO_LOG), {"LEGION_GATEWAY_ACCESS_LOG": "false"},
         "legion gateway, 1 worker, no access log, prediction log"),
        (TWO_WORKERS, [legion], ("--workers", "2", *logs(TWO_WORKERS)), {},
         "legion gateway, 2 workers (SO_REUSEPORT), access log, prediction log"),
    ]  # fmt: skip
    gateways = [gateway for gateway in gateways if settings.wants(gateway[0])]
    for baseline in settings.baselines:
        argv, env = baseline_command(baseline)
        name = f"gateway @ {baseline.name}"
        setup = f"legion gateway from {baseline.resolve()}, 1 worker, access log, prediction log"
        gateways.append((name, argv, logs(name), env, setup))
    for name, argv, extra, env, setup in gateways:
        try:
            server = start_gateway(name, argv, routing, *extra, env=env, deadline_s=deadline)
        except ServerStartError as exc:
            outcome.proxies[name] = f"failed: {exc}"[:300]
            print(f"{name}: {outcome.proxies[name]}", flush=True)
            continue
        proxies.append(Proxy(name, server.url(path), token, server, setup))
    if not settings.wants(HAPROXY):
        return proxies
    binary, version = haproxy_binary()
    if binary is None:
        outcome.proxies[HAPROXY] = f"skipped: {version}"
        print(f"{HAPROXY}: {outcome.proxies[HAPROXY]}", flush=True)
    else:
        try:
            server = start_haproxy(binary, routing)
            setup = (f"{version}; nbthread 1; JWT: HS256 signature, alg, exp, nbf, iss, aud (not model scopes, "
                     "not revocation); no request id, metrics or access log")  # fmt: skip
            proxies.append(Proxy(HAPROXY, server.url(path), token, server, setup))
        except ServerStartError as exc:
            outcome.proxies[HAPROXY] = f"failed: {exc}"[:300]
            print(f"{HAPROXY}: {outcome.proxies[HAPROXY]}", flush=True)
    return proxies


def run(settings: RunSettings, census: Census, legion: str) -> Outcome:
    body = legion_body(census.frames[1])
    manifest = Manifest.read(census.model_dir)
    token = {"Authorization": f"Bearer {model_token(manifest)}"}
    argv = [legion, "serve", str(census.model_dir), "--host", HOST, "--port", "0"]
    model = start_server("census-server", argv, ready_path=LEGION_READY, port_pattern=GATEWAY_PORT,
                         deadline_s=settings.startup_deadline_s, env=dict(settings.serve_env))  # fmt: skip
    outcome = Outcome()
    proxies: list[Proxy] = []
    try:
        print("in process: upstream clients", flush=True)
        outcome.clients = asyncio.run(time_clients(model.url(""), body, settings.calls))
        direct = Proxy(DIRECT, model.url(census.legion_path), {}, None, "legion serve, 1 worker")
        proxies = [direct, *start_proxies(legion, model, manifest, token=token, census=census,
                                                  settings=settings, outcome=outcome)]  # fmt: skip
        checked = []
        for proxy in proxies:
            try:
                answer = post_json_with(proxy.url, body, proxy.headers)
                if "prediction" not in answer:
                    raise BenchmarkError(f"answered {answer}")
            except BenchmarkError as exc:
                outcome.proxies[proxy.name] = f"failed: {exc}"[:300]
                continue
            outcome.proxies[proxy.name] = proxy.setup
            checked.append(proxy)
        if not checked or checked[0] is not direct:
            raise BenchmarkError(f"the model server does not answer: {outcome.proxies.get(DIRECT)}")
        outcome.runs = interleaved(checked, model, body, settings)
    finally:
        for proxy in proxies:
            if proxy.server is not None:
                proxy.server.stop()
        model.stop()
    return outcome


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="seconds per measured wrk run (default 3)")
    parser.add_argument("--rounds", type=int, help="interleaved rounds (default 5, quick 1)")
    parser.add_argument("--baseline", type=Path, action="append", default=[],
                        help="also measure the gateway of this checkout, e.g. main (repeatable)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not a measurement")
    parser.add_argument("--serve-env", action="append", default=[], metavar="NAME=VALUE",
                        help="a variable for the model server, e.g. LEGION_BATCH_LINGER_S=0")  # fmt: skip
    parser.add_argument("--only", action="append", default=[], metavar="VARIANT", choices=VARIANTS,
                        help="measure only this variant (repeatable; direct always runs)")  # fmt: skip
    parser.add_argument("--concurrency", action="append", type=int, choices=CONCURRENCY, default=[],
                        help="measure only at this concurrency (repeatable; default both)")  # fmt: skip
    parser.add_argument("--pool", nargs="+", type=Path, metavar="RESULT",
                        help="measure nothing: the logging target over these saved runs' rounds together")  # fmt: skip
    args = parser.parse_args(argv)
    if args.pool:
        return pooled(args.pool)
    if any("=" not in item for item in args.serve_env):
        parser.error("--serve-env takes NAME=VALUE")
    settings = RunSettings(
        duration_s=args.duration or (1.0 if args.quick else 3.0), warmup_s=1.0,
        rounds=args.rounds or (1 if args.quick else 5), calls=300 if args.quick else 2000,
        baselines=tuple(args.baseline),
        serve_env=tuple(tuple(item.split("=", 1)) for item in args.serve_env), only=frozenset(args.only),
        concurrency=tuple(sorted(set(args.concurrency))) or CONCURRENCY,
    )  # fmt: skip
    for baseline in settings.baselines:
        try:  # the checkout's own legion package is the one that runs
            baseline_command(baseline)
        except BenchmarkError as exc:
            parser.error(str(exc))
    if len({b.name for b in settings.baselines}) < len(settings.baselines):
        parser.error("--baseline: give checkouts whose directories have different names (they name the variants)")
    console = Console(width=max(Console().width, 150))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    try:
        ensure_wrk()
        legion = legion_command()
        if legion is None:
            raise BenchmarkError("`legion` is not installed next to this interpreter")
        census = prepare_census()
        outcome = run(settings, census, legion)
    except BenchmarkError as exc:
        console.print(f"Error: {exc}", markup=False)
        return 1
    names = [name for name in outcome.proxies if not outcome.proxies[name].startswith(("skipped", "failed"))]
    summaries = summarize(outcome.runs, names)
    ratios = logging_ratios(outcome.runs)
    verdicts = check(summaries, [n for n in names if n != DIRECT], ratios)
    report(console, outcome, summaries, verdicts, settings)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"gateway-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps({
        "benchmark": "gateway", "started_at": started_at.isoformat(), "finished_at": datetime.now(UTC).isoformat(),
        "settings": {"duration_s": settings.duration_s, "warmup_s": settings.warmup_s, "rounds": settings.rounds,
                     "rows": 1, "concurrency": list(settings.concurrency), "in_process_calls": settings.calls,
                     "baselines": [str(b) for b in settings.baselines]},
        "machine": machine_info(), "versions": package_versions(PACKAGES), "targets_setup": outcome.proxies,
        "summary": [asdict(s) for s in summaries], "runs": [asdict(r) for r in outcome.runs],
        "clients": outcome.clients,
        "targets": [{"target": v.target, "measured": v.measured, "verdict": v.verdict} for v in verdicts],
        "logging_ratios": ratios,
    }, indent=2) + "\n", encoding="utf-8")  # fmt: skip
    console.print(f"saved {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Gateway benchmark: what ``legion gateway`` adds to a model call, against calling the model server directly.

Run ``python benchmarks/gateway.py [--duration SECONDS] [--quick]`` from the repository root.

One run trains the census income pipeline (``examples/census_income/train.py``, as ``serve.py`` does), starts ONE
``legion serve MODEL_DIR --workers 1`` and measures, on loopback, requests of one real row:

- ``direct``: wrk straight to the model server, ``POST /api/model/invoke``;
- ``gateway``: wrk to ``legion gateway`` (routing from a file naming that same server, a model token checked on
  every request, access log on, one worker), ``POST /model/census/api/model/invoke``: the shipped default;
- alternatives, to choose by the numbers: the gateway without its access log, and with two workers;
- ``direct (again)``: the server alone once more at the end, so drift during the run shows;
- in process, the two upstream clients the gateway could use, each calling the model server one request at a
  time: httpx's ``AsyncClient`` and the gateway's own ``UpstreamPool`` (p50 per call).

Targets (against the mean of the two direct runs at the same concurrency): the gateway adds ≤ 0.5 ms to p50 at
concurrency 1 and keeps ≥ 70 % of the direct requests/s at concurrency 32. wrk: one thread and one connection
for c1, two threads and 32 connections for c32, a warm-up run before each measured run. The machine has two
cores shared by wrk, the gateway and the model server: compare within one run.

Results: a table on stdout and ``benchmarks/results/gateway-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import re
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from _harness import (
    HOST,
    RESULTS_DIR,
    WORK_DIR,
    BenchmarkError,
    Row,
    Server,
    ServerStartError,
    ensure_wrk,
    machine_info,
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
DIRECT, DIRECT_AGAIN, GATEWAY = "direct", "direct (again)", "gateway"
NO_LOG, TWO_WORKERS = "gateway, no access log", "gateway, 2 workers"
PACKAGES = ("legion", "uvicorn", "uvloop", "httptools", "httpx", "orjson", "pyjwt", "prometheus-client")


@dataclass(frozen=True, slots=True)
class RunSettings:
    duration_s: float
    warmup_s: float
    calls: int
    startup_deadline_s: float = 180.0


def model_token(model: Manifest) -> str:
    scope = ModelScope(model.name, model.version)
    signed, _ = TokenIssuer(TokenConfig(secret=SECRET)).issue("bench", "legion-model-api", 3600, models=[scope])
    return signed


def start_gateway(name: str, legion: str, model_url: str, model: Manifest, *extra: str,
                  env: dict[str, str] | None = None) -> Server:  # fmt: skip
    routing = WORK_DIR / f"{name.replace(' ', '-').replace(',', '')}-routing.json"
    routing.write_text(json.dumps({"etag": "bench", "deployments": [
        {"id": "census", "state": "Ready", "minReplicas": 1, "endpoints": [model_url], "modelName": model.name,
         "modelVersion": model.version}]}))  # fmt: skip
    argv = [legion, "gateway", "--host", HOST, "--port", "0", "--routing-file", str(routing), *extra]
    env = {"LEGION_GATEWAY_TOKEN_SECRET": SECRET, **(env or {})}
    return start_server(name.replace(" ", "-").replace(",", ""), argv, ready_path="/healthcheck",
                        port_pattern=GATEWAY_PORT, env=env)  # fmt: skip


def measure(name: str, url: str, body: bytes, headers: dict[str, str], settings: RunSettings) -> list[Row]:
    answer = post_json_with(url, body, headers)
    if "prediction" not in answer:
        raise BenchmarkError(f"{name} answered {answer}")
    script = write_post_script(name.replace(" ", "-").replace(",", "").replace("(", "").replace(")", ""), body,
                               headers)  # fmt: skip
    rows = []
    for concurrency in CONCURRENCY:
        try:
            result = run_wrk(url, script, connections=concurrency, threads=1 if concurrency == 1 else 2,
                             duration_s=settings.duration_s, warmup_s=settings.warmup_s)  # fmt: skip
        except BenchmarkError as exc:
            rows.append(Row(name, 1, concurrency, status=f"failed: {exc}"[:300]))
            continue
        print(f"  {name:24} c{concurrency:<2}  p50 {result.p50_ms:6.2f} ms  p99 {result.p99_ms:6.2f} ms  "
              f"{result.rps:8.1f} req/s  errors {result.errors}", flush=True)  # fmt: skip
        rows.append(Row(name, 1, concurrency, result.p50_ms, result.p99_ms, result.rps, result.requests,
                        result.errors, "ok" if result.errors == 0 else f"ok, {result.errors} errors"))  # fmt: skip
    return rows


def post_json_with(url: str, body: bytes, headers: dict[str, str]) -> Any:
    if not headers:
        return post_json(url, body)
    answer = httpx.post(url, content=body, headers={"Content-Type": "application/json", **headers}, timeout=30)
    if answer.status_code != 200:
        raise BenchmarkError(f"POST {url} answered {answer.status_code}: {answer.text[:300]}")
    return answer.json()


async def time_clients(model_url: str, body: bytes, calls: int) -> list[Row]:
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
            rows.append(Row(name, 1, None, percentile(samples, 0.5), percentile(samples, 0.99), requests=calls))
            print(f"  {name:30} p50 {rows[-1].p50_ms:6.3f} ms", flush=True)
    pool.close()
    return rows


@dataclass(frozen=True, slots=True)
class Verdict:
    target: str
    measured: str
    verdict: str


def check(rows: list[Row]) -> tuple[list[Verdict], dict[str, dict[int, dict[str, float]]]]:
    """Targets and, per server and concurrency, ``added p50 ms`` and ``rps ratio`` against the direct mean."""
    by = {(r.server, r.concurrency): r for r in rows if r.p50_ms is not None and r.concurrency}
    base: dict[int, tuple[float, float]] = {}
    for c in CONCURRENCY:
        direct = [by[(n, c)] for n in (DIRECT, DIRECT_AGAIN) if (n, c) in by]
        if direct:
            base[c] = (sum(r.p50_ms or 0 for r in direct) / len(direct), sum(r.rps or 0 for r in direct) / len(direct))
    ratios: dict[str, dict[int, dict[str, float]]] = {}
    for (server, c), row in by.items():
        if c in base and row.p50_ms is not None and row.rps is not None:
            added, kept = row.p50_ms - base[c][0], row.rps / base[c][1]
            ratios.setdefault(server, {})[c] = {"added_p50_ms": added, "rps_ratio": kept}
            row.ratios.update({"added p50 ms": added, "rps/direct": kept})
    verdicts = []
    for server in (GATEWAY, NO_LOG, TWO_WORKERS):
        added = ratios.get(server, {}).get(1, {}).get("added_p50_ms")
        kept = ratios.get(server, {}).get(32, {}).get("rps_ratio")
        for target, value, test, limit, unit in (
            (f"{server}, c1: adds ≤ 0.5 ms to p50", added, operator.le, 0.5, " ms"),
            (f"{server}, c32: keeps ≥ 70 % of direct req/s", kept, operator.ge, 0.7, "×"),
        ):
            if value is None:
                verdicts.append(Verdict(target, "not measured", "n/a"))
            else:
                verdicts.append(Verdict(target, f"{value:.3f}{unit}", "PASS" if test(value, limit) else "MISS"))
    return verdicts, ratios


def report(console: Console, rows: list[Row], verdicts: list[Verdict]) -> None:
    table = RichTable(title="census pipeline, 1 row: direct to legion serve vs through legion gateway")
    for header in ("server", "conc", "p50 ms", "p99 ms", "req/s", "added p50 ms", "rps/direct", "status"):
        table.add_column(header, justify="left" if header in ("server", "status") else "right")
    for row in rows:
        table.add_row(
            row.server, "in-proc" if row.concurrency is None else str(row.concurrency),
            f"{row.p50_ms:.3f}" if row.p50_ms is not None else "", f"{row.p99_ms:.2f}" if row.p99_ms else "",
            f"{row.rps:,.0f}" if row.rps else "",
            f"{row.ratios['added p50 ms']:+.3f}" if "added p50 ms" in row.ratios else "",
            f"{row.ratios['rps/direct']:.2f}" if "rps/direct" in row.ratios else "", row.status,
        )  # fmt: skip
    console.print(table)
    targets = RichTable(title="targets (against the mean of the two direct runs)")
    for header in ("target", "measured", "verdict"):
        targets.add_column(header)
    for verdict in verdicts:
        targets.add_row(verdict.target, verdict.measured, verdict.verdict)
    console.print(targets)


def run(settings: RunSettings, census: Census, legion: str) -> list[Row]:
    body = legion_body(census.frames[1])
    manifest = Manifest.read(census.model_dir)
    token = {"Authorization": f"Bearer {model_token(manifest)}"}
    argv = [legion, "serve", str(census.model_dir), "--host", HOST, "--port", "0"]
    model = start_server("census-server", argv, ready_path=LEGION_READY, port_pattern=GATEWAY_PORT,
                         deadline_s=settings.startup_deadline_s)  # fmt: skip
    rows: list[Row] = []
    try:
        model_url = model.url("")
        print("in process: upstream clients", flush=True)
        rows += asyncio.run(time_clients(model_url, body, settings.calls))
        rows += measure(DIRECT, model.url(census.legion_path), body, {}, settings)
        variants = [(GATEWAY, (), {}), (NO_LOG, (), {"LEGION_GATEWAY_ACCESS_LOG": "false"}),
                    (TWO_WORKERS, ("--workers", "2"), {})]  # fmt: skip
        path = f"/model/census{census.legion_path}"
        for name, extra, env in variants:
            try:
                gateway = start_gateway(name, legion, model_url, manifest, *extra, env=env)
            except ServerStartError as exc:
                rows += [Row(name, 1, c, status=f"failed: {exc}"[:300]) for c in CONCURRENCY]
                continue
            try:
                rows += measure(name, gateway.url(path), body, token, settings)
            finally:
                gateway.stop()
        rows += measure(DIRECT_AGAIN, model.url(census.legion_path), body, {}, settings)
    finally:
        model.stop()
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, help="seconds per measured wrk run (default 10, quick 3)")
    parser.add_argument("--quick", action="store_true", help="short runs: a smoke test, not a measurement")
    args = parser.parse_args(argv)
    duration = args.duration or (3.0 if args.quick else 10.0)
    settings = RunSettings(duration, 1.0 if args.quick else 2.0, 300 if args.quick else 2000)
    console = Console(width=max(Console().width, 130))
    WORK_DIR.mkdir(parents=True, exist_ok=True)
    started_at = datetime.now(UTC)
    try:
        ensure_wrk()
        legion = legion_command()
        if legion is None:
            raise BenchmarkError("`legion` is not installed next to this interpreter")
        census = prepare_census()
        rows = run(settings, census, legion)
    except BenchmarkError as exc:
        console.print(f"Error: {exc}", markup=False)
        return 1
    verdicts, ratios = check(rows)
    report(console, rows, verdicts)
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"gateway-{started_at.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.write_text(json.dumps({
        "benchmark": "gateway", "started_at": started_at.isoformat(), "finished_at": datetime.now(UTC).isoformat(),
        "settings": {"duration_s": settings.duration_s, "warmup_s": settings.warmup_s, "rows": 1,
                     "concurrency": list(CONCURRENCY), "in_process_calls": settings.calls},
        "machine": machine_info(), "versions": package_versions(PACKAGES),
        "rows": [r.to_json() for r in rows], "ratios": ratios,
        "targets": [{"target": v.target, "measured": v.measured, "verdict": v.verdict} for v in verdicts],
    }, indent=2) + "\n", encoding="utf-8")  # fmt: skip
    console.print(f"saved {path.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

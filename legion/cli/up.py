"""``legion up``: the whole platform on this machine, with an example model deployed and answering.

It starts ``legion api`` (SQLite in the data directory, the local runtime, auth on unless ``--dev``) and
``legion gateway`` (following the API's routing, checking model tokens signed with the API's key) as child
processes, saves a ``local`` CLI context for them, applies the manifests (by default the census example: training →
packaging → deployment), waits for each object in file order, and prints a ready-to-paste ``curl`` through the
gateway with a model token. Ctrl-C (or SIGTERM) stops the gateway, the API and the replicas it started; the objects
stay in the database, so the next ``legion up`` brings the same deployments back without training again.

``--prometheus`` also runs a real Prometheus (``legion.cli.prometheus``) that scrapes the API, the gateway and every
replica (found through the API's service discovery, so it follows deployments), with its data in
``<data dir>/prometheus``; it stops with the rest.

The services are child processes reached over HTTP, as any other client reaches them; this command imports no
service package.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import click

from legion.cli.config import ClientSettings, save_context
from legion.cli.prometheus import PrometheusServer, PrometheusSettings, find_binary, write_config
from legion.cli.resources import read_file
from legion.cli.waiting import wait_for
from legion.client import LegionClient
from legion.core.errors import InvalidInputError, UnavailableError
from legion.core.resources import find_kind
from legion.core.settings import legion_home

EXAMPLE = Path("examples/census_income/legion.yaml")
START_TIMEOUT_S = 120.0


@dataclass(frozen=True)
class LocalPlatform:
    """What ``legion up`` starts and how: the options of the command, as one value its steps share."""

    data_dir: Path
    """Database, keys, models and packages (``~/.legion`` by default)."""
    api_port: int = 5080
    """Port of the management API (0 picks a free one)."""
    gateway_port: int = 5090
    """Port of the gateway (0 picks a free one)."""
    dev: bool = False
    """Authentication off (laptop only)."""
    timeout_s: float = 900.0
    """How long to wait for each applied object."""
    prometheus: bool = False
    """Also run Prometheus, scraping the API, the gateway and every replica."""
    prometheus_port: int = 9090
    """Port of Prometheus (0 picks a free one)."""
    prometheus_binary: Path | None = None
    """The prometheus executable (default: ``$LEGION_PROMETHEUS_BINARY``, PATH, then ``.cache/prometheus``)."""


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, show_default="~/.legion",
              help="Database, keys, models and packages.")  # fmt: skip
@click.option("--port", "api_port", type=int, default=5080, show_default=True, help="API port (0 picks a free one).")
@click.option("--gateway-port", type=int, default=5090, show_default=True, help="Gateway port (0: a free one).")
@click.option("-f", "--filename", "manifests", multiple=True, help=f"Manifests to apply (default: {EXAMPLE}).")
@click.option("--dev", is_flag=True, help="Authentication OFF (laptop only).")
@click.option("--timeout", "timeout_s", type=float, default=900.0, show_default=True,
              help="Seconds to wait for each object.")  # fmt: skip
@click.option("--prometheus", is_flag=True, help="Also run Prometheus, scraping the API, gateway and every replica.")
@click.option("--prometheus-port", type=int, default=9090, show_default=True, help="Prometheus port (0: a free one).")
@click.option(
    "--prometheus-binary",
    type=click.Path(path_type=Path),
    default=None,
    help="The prometheus executable (default: $LEGION_PROMETHEUS_BINARY, PATH, then .cache/prometheus).",
)
def up(manifests: tuple[str, ...], data_dir: Path | None, **options: Any) -> None:
    """Run the platform locally and deploy the example (or the given manifests); Ctrl-C stops it."""
    platform = LocalPlatform(data_dir=data_dir or legion_home(), **options)
    files = list(manifests) or ([str(EXAMPLE)] if EXAMPLE.is_file() else [])
    if not files:
        raise InvalidInputError(f"no manifests given and no {EXAMPLE} here; run from the repository root or pass -f")
    documents = [d for path in files for d in read_file(path)]
    binary = (  # before starting anything
        find_binary(platform.prometheus_binary, PrometheusSettings()) if platform.prometheus else None
    )
    api = _start_api(platform)
    gateway: _Child | None = None
    scraper: PrometheusServer | None = None
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        stopping.set()
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        url = api.url
        gateway = _start_gateway(platform, url)
        token = None if platform.dev else _token(platform.data_dir)
        save_context(ClientSettings().config_file, "local", url, token, gateway.url)
        click.echo(f"management API: {url}  gateway: {gateway.url}  (CLI context 'local' saved"
                   f"{'; AUTH OFF' if platform.dev else ''})")  # fmt: skip
        if binary is not None:
            scraper = _start_prometheus(binary, platform, url, gateway.url)
            click.echo(f"prometheus: {scraper.url}  (config {scraper.log_file.parent / 'prometheus.yml'})")
        with LegionClient(url, token) as session:
            deployed = _apply(session, documents, platform.timeout_s)
            for deployment in deployed:
                _print_call(session, deployment, gateway.url, platform.dev)
        click.echo("the platform runs; Ctrl-C stops it", err=True)
        while (
            api.process.poll() is None
            and gateway.process.poll() is None
            and (scraper is None or scraper.process.poll() is None)
        ):
            stopping.wait(0.5)
    except KeyboardInterrupt:
        click.echo("stopping", err=True)
    finally:
        if scraper is not None:
            scraper.stop()
        if gateway is not None:
            gateway.stop()
        api.stop()
    if not stopping.is_set() and scraper is not None and scraper.process.returncode not in (0, -signal.SIGTERM):
        raise UnavailableError(f"prometheus exited with status {scraper.process.returncode}; see {scraper.log_file}")
    if not stopping.is_set() and api.process.returncode not in (0, -signal.SIGTERM):
        raise UnavailableError(f"the management API exited with status {api.process.returncode}")


class _Child:
    """A service child (``legion api``, ``legion gateway``): its URL once it listens, its output passed through."""

    def __init__(self, process: subprocess.Popen[str], label: str) -> None:
        self.process = process
        self.label = label
        self._url: list[str] = []
        self._ready = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("listening on ") and not self._url:
                self._url.append(line.removeprefix("listening on ").strip())
                self._ready.set()
            else:
                click.echo(f"[{self.label}] {line.rstrip()}", err=True)
        self._ready.set()

    @property
    def url(self) -> str:
        if not self._ready.wait(START_TIMEOUT_S) or not self._url:
            raise UnavailableError(f"legion {self.label} did not start (exit status {self.process.poll()})")
        return self._url[0]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(60)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def _start_api(platform: LocalPlatform) -> _Child:
    command = [sys.executable, "-m", "legion", "api", "--port", str(platform.api_port),
               "--data-dir", str(platform.data_dir), "--runtime", "local", "--stop-replicas-on-exit",
               *(["--dev"] if platform.dev else [])]  # fmt: skip
    env = dict(os.environ)
    if platform.gateway_port:  # known before the gateway starts: routes show their edgeUrl through it
        env["LEGION_API_GATEWAY_URL"] = f"http://127.0.0.1:{platform.gateway_port}"
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    return _Child(process, "api")


def _start_gateway(platform: LocalPlatform, api_url: str) -> _Child:
    data_dir = platform.data_dir
    command = [sys.executable, "-m", "legion", "gateway", "--port", str(platform.gateway_port), "--api-url", api_url,
               "--keys-file", str(data_dir / "keys.json"), "--log-dir", str(data_dir / "logs"),
               "--log-buffer-dir", str(data_dir / "gateway" / "buffer"),
               *(["--no-auth"] if platform.dev else [])]  # fmt: skip
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return _Child(process, "gateway")


def _start_prometheus(binary: Path, platform: LocalPlatform, api_url: str, gateway_url: str) -> PrometheusServer:
    """Prometheus with a read-only API token (in a 0600 file its configuration names), its data in the data dir."""
    directory = platform.data_dir / "prometheus"
    token = None if platform.dev else _token(platform.data_dir, role="viewer", subject="prometheus")
    config = write_config(directory, api_url, gateway_url, token)
    return PrometheusServer.start(binary, config, directory, platform.prometheus_port)


def _token(data_dir: Path, role: str = "admin", subject: str = "legion-up") -> str:
    done = subprocess.run(
        [sys.executable, "-m", "legion", "api", "--data-dir", str(data_dir), "token", "--role", role,
         "--subject", subject, "--expires-in", str(30 * 24 * 3600)],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    if done.returncode != 0:
        raise UnavailableError(f"cannot sign an API token: {done.stderr.strip()}")
    return done.stdout.strip()


def _apply(session: LegionClient, documents: list[dict[str, Any]], timeout_s: float) -> list[dict[str, Any]]:
    """Apply each document and wait for it before the next; the deployments, as they are once ready."""
    deployed = []
    for document in documents:
        info = find_kind(document["kind"])
        outcome, _ = session.apply(info.path, document)
        click.echo(f"{info.name} {document['id']} {outcome}")
        ready = wait_for(session, info.name, str(document["id"]), timeout_s)
        if info.name == "ModelDeployment" and ready is not None:
            deployed.append(ready)
    return deployed


def _print_call(session: LegionClient, deployment: dict[str, Any], gateway: str, dev: bool) -> None:
    """How to call the deployment through the gateway: a curl with a model token (valid a day) and the CLI."""
    status = deployment.get("status", {})
    name, version = status.get("modelName"), status.get("modelVersion")
    click.echo(f"deployment {deployment['id']}: {name}:{version} on replicas {', '.join(status.get('endpoints', []))}")
    body = _example(session, name, version)
    if body:
        data = shlex.quote(json.dumps(body, separators=(",", ":")))
        auth = ""
        if not dev and name:
            token = session.model_token([{"name": name, "version": version or "*"}], expires_in_s=24 * 3600.0)
            auth = f" -H 'Authorization: Bearer {token['token']}'"
        click.echo(f"curl -s -X POST {gateway}/model/{deployment['id']}/api/model/invoke{auth} "
                   f"-H 'Content-Type: application/json' -d {data}")  # fmt: skip
    click.echo(f"or: legion model invoke {deployment['id']} --json '<{{columns, data}} or a record>'")


def _example(session: LegionClient, name: str | None, version: str | None) -> dict[str, Any] | None:
    """The example row saved with the model (in its manifest in the registry)."""
    if not name:
        return None
    for model in session.models(name):
        if model["version"] == version:
            endpoints = model.get("manifest", {}).get("endpoints", {})
            endpoint: dict[str, Any] = endpoints.get("default") or next(iter(endpoints.values()), {})
            example: dict[str, Any] | None = endpoint.get("example")
            return example
    return None

"""``legion up``: the whole platform on this machine, with an example model deployed and answering.

It starts ``legion api`` (SQLite in the data directory, the local runtime, auth on unless ``--dev``) and
``legion gateway`` (following the API's routing, checking model tokens signed with the API's key) as child
processes (``legion.cli.children``), saves a CLI context for them, applies the manifests (by default the census
example: training → packaging → deployment), waits for each object in file order, and prints a ready-to-paste
``curl`` through the gateway with a model token.

Then it watches: the API or the gateway that dies is started again on the same port, after a backoff
(``UpSettings.restart``, a ``legion.hosting.supervisor.RestartPolicy``); the gateway serves the routing it last saw
while the API is away, and the new API adopts the running replicas. One that keeps dying ends ``legion up`` with
the reason. Ctrl-C (SIGINT, or SIGTERM, SIGHUP) stops the gateway, the API and the replicas it started, and ends
with status 0: it is how the platform is meant to stop. The objects stay in the database, so the next
``legion up`` brings the same deployments back without training again.

The CLI context is ``local`` for ``~/.legion`` and ``local-<dir>`` for another data directory. It becomes the
current context only with ``--use-context`` or when no other context is current, so a second platform never takes
the first one's place unasked; ``legion config use-context NAME`` switches later.

``--prometheus`` also runs a real Prometheus (``legion.cli.prometheus``) that scrapes the API, the gateway and every
replica (found through the API's service discovery, so it follows deployments), with its data in
``<data dir>/prometheus``; it stops with the rest.

The services are child processes reached over HTTP, as any other client reaches them; this command imports no
service package.
"""

from __future__ import annotations

import functools
import json
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import FrameType
from typing import Any

import click
from pydantic import Field
from pydantic_settings import SettingsConfigDict

from legion.cli.children import ServiceChild, Supervision, spawn
from legion.cli.config import ClientSettings, Context, platform_context_name, read_config, save_context
from legion.cli.options import settings_from_options
from legion.cli.prometheus import PrometheusServer, PrometheusSettings, find_binary, write_config
from legion.cli.resources import read_file
from legion.cli.waiting import wait_for
from legion.client import LegionClient
from legion.core.errors import InvalidInputError, UnavailableError
from legion.core.resources import find_kind
from legion.core.settings import LegionSettings, legion_home
from legion.hosting.supervisor import RestartPolicy

EXAMPLE = Path("examples/census_income/legion.yaml")
WATCH_INTERVAL_S = 0.2
"""How often the children are checked once the platform runs."""


class UpSettings(LegionSettings):
    """What the environment tells ``legion up`` beyond its options."""

    model_config = SettingsConfigDict(env_prefix="LEGION_UP_", env_nested_delimiter="__", extra="ignore", frozen=True)

    restart: RestartPolicy = Field(default_factory=RestartPolicy)
    """How the management API and the gateway are restarted when they die (``LEGION_UP_RESTART__INITIAL_DELAY_S``,
    ``__MAX_DELAY_S``, ``__RESET_AFTER_S``, ``__MAX_RAPID_FAILURES``)."""


@dataclass(frozen=True)
class LocalPlatform:
    """What ``legion up`` starts and how: the options of the command, as one value its steps share."""

    data_dir: Path
    """Database, keys, models and packages (``$LEGION_DATA_DIR``, else ``~/.legion``)."""
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
    context: str | None = None
    """Name of the CLI context to save (default: ``local``, or ``local-<dir>`` for another data directory)."""
    use_context: bool = False
    """Make that context the current one even when another is."""


@click.command()
@click.option("--data-dir", type=click.Path(path_type=Path), default=None, show_default="$LEGION_DATA_DIR, ~/.legion",
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
@click.option("--context", default=None, help="Name of the CLI context to save (default: local, or local-<dir>).")
@click.option("--use-context", is_flag=True, help="Make that context current even when another one is.")
def up(manifests: tuple[str, ...], data_dir: Path | None, **options: Any) -> None:
    """Run the platform locally and deploy the example (or the given manifests); Ctrl-C stops it."""
    platform = LocalPlatform(data_dir=data_dir or legion_home(), **options)
    settings = settings_from_options(UpSettings, {})
    files = list(manifests) or ([str(EXAMPLE)] if EXAMPLE.is_file() else [])
    if not files:
        raise InvalidInputError(f"no manifests given and no {EXAMPLE} here; run from the repository root or pass -f")
    documents = [d for path in files for d in read_file(path)]
    binary = (  # before starting anything
        find_binary(platform.prometheus_binary, PrometheusSettings()) if platform.prometheus else None
    )
    stopping = _on_stop_signals()
    api = ServiceChild("api", "the management API", functools.partial(_launch_api, platform, None), platform.api_port)
    gateway: ServiceChild | None = None
    scraper: PrometheusServer | None = None
    try:
        api.start()
        url = api.url
        gateway = ServiceChild("gateway", "the gateway", functools.partial(_launch_gateway, platform, url),
                               platform.gateway_port)  # fmt: skip
        gateway.start()
        api.launch = functools.partial(_launch_api, platform, gateway.url)  # a restarted API knows the gateway
        token = None if platform.dev else _token(platform.data_dir)
        click.echo(f"management API: {url}  gateway: {gateway.url}  (pids: api {api.pid}, gateway {gateway.pid}"
                   f"{'; AUTH OFF' if platform.dev else ''})")  # fmt: skip
        click.echo(save_platform_context(ClientSettings().config_file, platform, Context(url, token, gateway.url)))
        if binary is not None:
            scraper = _start_prometheus(binary, platform, url, gateway.url)
            click.echo(f"prometheus: {scraper.url}  (config {scraper.log_file.parent / 'prometheus.yml'})")
        with LegionClient(url, token) as session:
            deployed = _apply(session, documents, platform.timeout_s)
            for deployment in deployed:
                _print_call(session, deployment, gateway.url, platform.dev)
        click.echo("the platform runs; Ctrl-C stops it", err=True)
        supervision = Supervision([api, gateway], settings.restart, time.monotonic())
        while not stopping.is_set():
            supervision.check(time.monotonic())
            if scraper is not None and scraper.process.poll() is not None:
                raise UnavailableError(
                    f"prometheus exited with status {scraper.process.returncode}; see {scraper.log_file}"
                )
            stopping.wait(WATCH_INTERVAL_S)
    except KeyboardInterrupt:
        pass  # a stop signal (_on_stop_signals): the way the platform is meant to stop, whatever was under way
    finally:
        click.echo("stopping", err=True)
        if scraper is not None:
            scraper.stop()
        if gateway is not None:
            gateway.stop()
        api.stop()


def _on_stop_signals() -> threading.Event:
    """SIGINT, SIGTERM and SIGHUP stop the platform: the first raises ``KeyboardInterrupt`` wherever ``up`` is and
    sets the event returned; later ones are ignored, so that the stop under way is not broken off."""
    stopping = threading.Event()

    def stop(signum: int, frame: FrameType | None) -> None:
        if not stopping.is_set():
            stopping.set()
            raise KeyboardInterrupt

    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)
    return stopping


def save_platform_context(path: Path, platform: LocalPlatform, context: Context) -> str:
    """Save the platform's CLI context in ``path``; it becomes current only if asked, or if no other context is
    current. What was done, to print."""
    name = platform.context or platform_context_name(path, platform.data_dir)
    if save_context(
        path, name, replace(context, data_dir=platform.data_dir.resolve()), make_current=platform.use_context
    ):
        return f"CLI context {name!r} saved and current"
    current = read_config(path).get("current")
    return (f"CLI context {name!r} saved; the current context stays {current!r} "
            f"(switch with: legion config use-context {name})")  # fmt: skip


def _launch_api(platform: LocalPlatform, gateway_url: str | None, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "legion", "api", "--port", str(port),
               "--data-dir", str(platform.data_dir), "--runtime", "local", "--stop-replicas-on-exit",
               *(["--dev"] if platform.dev else [])]  # fmt: skip
    if gateway_url is None and platform.gateway_port:  # known before the gateway starts
        gateway_url = f"http://127.0.0.1:{platform.gateway_port}"
    env = dict(os.environ)
    if gateway_url is not None:  # routes show their edgeUrl through it
        env["LEGION_API_GATEWAY_URL"] = gateway_url
    return spawn(command, env)


def _launch_gateway(platform: LocalPlatform, api_url: str, port: int) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "legion", "gateway", "--port", str(port), "--api-url", api_url,
               "--data-dir", str(platform.data_dir), *(["--no-auth"] if platform.dev else [])]  # fmt: skip
    return spawn(command)


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

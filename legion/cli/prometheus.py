"""A real Prometheus for ``legion up --prometheus``: find the binary, write its configuration, start and stop it.

``write_config`` writes a ``prometheus.yml`` with three jobs, each labelled with its ``component``:

- ``legion-api``: the management API, found through its own service discovery
  (``/api/v1/prometheus/targets?component=api``) and scraped with an API token;
- ``legion-models``: every ready replica of every deployment, from the same endpoint (``?component=model``), so the
  targets follow deployments as they come and go; scraped without a token (a replica runs a user's model code and
  its ``/metrics`` is open), and with ``honor_labels`` so the server's own ``model``/``version`` labels are kept;
- ``legion-gateway``: listed statically (the gateway does not register with the API).

The token (a ``viewer`` token: reads only) lives in a file of mode 0600 that the configuration names through
``credentials_file``; it is never on a command line or in a log. ``PrometheusServer.start`` runs the binary with its
storage under the data directory, listening on 127.0.0.1, and returns once ``/-/ready`` answers.

    binary = find_binary(None, PrometheusSettings())
    config = write_config(data_dir / "prometheus", api_url, gateway_url, token)
    server = PrometheusServer.start(binary, config, data_dir / "prometheus", port=0)
    ...
    server.stop()

The binary is, in order: ``--prometheus-binary``, ``LEGION_PROMETHEUS_BINARY``, ``prometheus`` on ``PATH``, and the
copy ``scripts/setup.sh`` unpacks from Debian's package into ``.cache/prometheus`` of this repository.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import yaml
from pydantic_settings import SettingsConfigDict

from legion.core.errors import NotFoundError, UnavailableError
from legion.core.settings import LegionSettings

REPOSITORY_COPY = Path(__file__).resolve().parents[2] / ".cache" / "prometheus" / "usr" / "bin" / "prometheus"
"""Where ``scripts/setup.sh`` unpacks Debian's prometheus package (a checkout of this repository only)."""
SCRAPE_INTERVAL_S = 2.0
START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
PORT_ATTEMPTS = 5
HOW_TO_GET = (
    "install Debian's prometheus package (apt-get install prometheus), run scripts/setup.sh (it unpacks one into "
    ".cache/prometheus), or pass --prometheus-binary PATH (or set LEGION_PROMETHEUS_BINARY)"
)


class PrometheusSettings(LegionSettings):
    """What the environment tells ``legion up --prometheus``."""

    model_config = SettingsConfigDict(env_prefix="LEGION_PROMETHEUS_", extra="ignore", frozen=True)

    binary: Path | None = None
    """The ``prometheus`` executable; default: ``prometheus`` on ``PATH``, then this repository's ``.cache`` copy."""


def find_binary(
    explicit: Path | None,
    settings: PrometheusSettings,
    search_path: str | None = None,
    fallback: Path = REPOSITORY_COPY,
) -> Path:
    """The Prometheus executable to run; ``search_path`` is ``PATH`` unless given. Raises ``NotFoundError``."""
    chosen = explicit or settings.binary
    if chosen is not None:
        if chosen.is_file() and os.access(chosen, os.X_OK):
            return chosen
        raise NotFoundError(f"{chosen} is not an executable file; {HOW_TO_GET}")
    found = shutil.which("prometheus", path=search_path)
    if found:
        return Path(found)
    if fallback.is_file() and os.access(fallback, os.X_OK):
        return fallback
    raise NotFoundError(f"no prometheus binary found; {HOW_TO_GET}")


def _address(url: str) -> str:
    return urlsplit(url).netloc


def scrape_config(
    api_url: str, gateway_url: str, token_file: Path | None, interval_s: float = SCRAPE_INTERVAL_S
) -> dict[str, Any]:
    """The configuration as a document; ``token_file`` is None when the API runs without auth (``--dev``)."""
    interval = f"{interval_s:g}s"

    def auth() -> dict[str, Any]:
        # ``type`` is spelled out: Prometheus 2.42 (Debian 12) leaves it empty in http_sd_configs, and then sends the
        # bare token without "Bearer". A fresh dict each time keeps the YAML free of anchors and aliases.
        return {"authorization": {"type": "Bearer", "credentials_file": str(token_file)}} if token_file else {}

    def discovered(component: str) -> list[dict[str, Any]]:
        url = f"{api_url.rstrip('/')}/api/v1/prometheus/targets?component={component}"
        return [{"url": url, "refresh_interval": interval, **auth()}]

    return {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "scrape_configs": [
            {"job_name": "legion-api", "metrics_path": "/metrics", "http_sd_configs": discovered("api"), **auth()},
            {"job_name": "legion-models", "metrics_path": "/metrics", "honor_labels": True,
             "http_sd_configs": discovered("model")},
            {"job_name": "legion-gateway", "metrics_path": "/metrics", "scheme": urlsplit(gateway_url).scheme,
             "static_configs": [{"targets": [_address(gateway_url)], "labels": {"component": "gateway"}}]},
        ],
    }  # fmt: skip


def _write_private(path: Path, text: str) -> None:
    """Write a file only its owner can read, whatever mode an older copy had."""
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(descriptor, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as out:
        out.write(text)


def write_config(
    directory: Path, api_url: str, gateway_url: str, token: str | None, interval_s: float = SCRAPE_INTERVAL_S
) -> Path:
    """Write ``prometheus.yml`` (and ``api.token``, mode 0600, when there is a token) into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    token_file = None
    if token is not None:
        token_file = directory / "api.token"
        _write_private(token_file, token)
    config = directory / "prometheus.yml"
    header = "# Written by `legion up --prometheus` on each start; edits are overwritten.\n"
    config.write_text(header + yaml.safe_dump(scrape_config(api_url, gateway_url, token_file, interval_s),
                                              sort_keys=False), encoding="utf-8")  # fmt: skip
    return config


def _free_port() -> int:
    # Prometheus takes an address to listen on, never a socket, so a socket cannot be handed over: bind port 0, read
    # the port, close and pass the number. Another process may take the port in between; ``start`` then retries.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class PrometheusServer:
    """A running Prometheus child process; its output goes to ``log_file``."""

    def __init__(self, process: subprocess.Popen[bytes], url: str, log_file: Path) -> None:
        self.process = process
        self.url = url
        self.log_file = log_file

    @classmethod
    def start(cls, binary: Path, config: Path, directory: Path, port: int = 0) -> PrometheusServer:
        """Start Prometheus on 127.0.0.1:``port`` (0: a free one) with its storage in ``directory``; wait till ready."""
        attempts = PORT_ATTEMPTS if port == 0 else 1
        for attempt in range(1, attempts + 1):
            server = cls._launch(binary, config, directory, port or _free_port())
            try:
                if server._wait_ready():
                    return server
            except BaseException:  # Ctrl-C while waiting: the caller has no handle on this process yet
                server.stop()
                raise
            server.stop()
            log = server.log_tail()
            if "address already in use" not in log or attempt == attempts:
                raise UnavailableError(f"prometheus did not start (see {server.log_file}):\n{log}")
        raise AssertionError("unreachable")  # pragma: no cover

    @classmethod
    def _launch(cls, binary: Path, config: Path, directory: Path, port: int) -> PrometheusServer:
        log_file = directory / "prometheus.log"
        command = [str(binary), f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
                   f"--web.listen-address=127.0.0.1:{port}"]  # fmt: skip
        with log_file.open("wb") as log:
            process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
        return cls(process, f"http://127.0.0.1:{port}", log_file)

    def _wait_ready(self) -> bool:
        deadline = time.monotonic() + START_TIMEOUT_S
        with httpx.Client(timeout=2.0) as client:
            while time.monotonic() < deadline and self.process.poll() is None:
                try:
                    if client.get(f"{self.url}/-/ready").status_code == 200:
                        return True
                except httpx.TransportError:
                    pass
                time.sleep(0.1)  # a local process starting: poll, with the deadline above
        return False

    def log_tail(self, lines: int = 20) -> str:
        """The last error lines of the log (the last lines of any kind when there are none)."""
        try:
            logged = self.log_file.read_text(encoding="utf-8", errors="replace").splitlines()
        except FileNotFoundError:
            return ""
        errors = [line for line in logged if "level=error" in line or "level=fatal" in line]
        return "\n".join((errors or logged)[-lines:])

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

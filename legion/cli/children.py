"""The services ``legion up`` runs as child processes: started, their output passed through, restarted when they
die, stopped in order.

``ServiceChild`` is one service (``legion api``, ``legion gateway``): ``launch(port)`` starts it, its lines are
echoed with a ``[label]`` prefix, and its URL is the one it announced first (``listening on URL``). The first start
may ask for port 0; every restart asks for the port it got, so the gateway, the CLI context and the printed ``curl``
stay right. ``Supervision.check(now)`` starts again each child that died on its own, after the delay its
``legion.hosting.supervisor.Restarts`` says, and raises ``UnavailableError`` when one keeps dying: the rule is
``RestartPolicy``'s, this module only applies it to processes.

Each child runs in a process group of its own: a terminal's Ctrl-C (SIGINT to the foreground group) reaches only
``legion up``, which stops the gateway, then the API (which stops its replicas), each with SIGTERM. Were the
children in the terminal's group, each would be interrupted at once and in no order, and report it as a failure.
"""

from __future__ import annotations

import signal
import subprocess
import threading
from collections.abc import Callable, Sequence
from urllib.parse import urlsplit

import click

from legion.core.errors import UnavailableError
from legion.hosting.supervisor import RestartPolicy, Restarts

START_TIMEOUT_S = 120.0
"""How long a service may take to announce its URL."""
STOP_TIMEOUT_S = 60.0
"""How long a service may take to stop on SIGTERM before it is killed."""

Launch = Callable[[int], "subprocess.Popen[str]"]
"""``launch(port)``: start the service on ``port`` (0: any), its standard output and error in one text pipe."""


def spawn(command: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    """A service child as ``Launch`` wants it: one text pipe for its output, in a process group of its own."""
    return subprocess.Popen(
        list(command), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, process_group=0
    )


class ServiceChild:
    """One service child; ``start()`` it, read its ``url``, ``stop()`` it."""

    def __init__(self, label: str, title: str, launch: Launch, port: int) -> None:
        self.label = label
        """Prefix of its output lines (``api``)."""
        self.title = title
        """How messages name it (``the management API``)."""
        self.launch = launch
        """How it is started; ``legion up`` changes it once the gateway URL is known."""
        self._port = port
        self._url: str | None = None
        self._announced = threading.Event()
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        """Start it (again) on its port; returns at once (``url`` waits for the announcement)."""
        process = self.launch(self._port)
        announced = threading.Event()
        threading.Thread(target=self._pump, args=(process, announced), daemon=True).start()
        self.process, self._announced = process, announced

    def _pump(self, process: subprocess.Popen[str], announced: threading.Event) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            if line.startswith("listening on ") and not announced.is_set():
                if self._url is None:
                    self._url = line.removeprefix("listening on ").strip()
                announced.set()
            else:
                click.echo(f"[{self.label}] {line.rstrip()}", err=True)
        announced.set()

    @property
    def pid(self) -> int:
        assert self.process is not None, "not started"
        return self.process.pid

    @property
    def url(self) -> str:
        """Where it listens, once it said so; a restart keeps the port, so the URL never changes."""
        if not self._announced.wait(START_TIMEOUT_S) or self._url is None:
            status = self.process.poll() if self.process is not None else None
            raise UnavailableError(f"legion {self.label} did not start (exit status {status})")
        self._port = urlsplit(self._url).port or self._port
        return self._url

    def exited(self) -> int | None:
        """Its exit status once it ended, else ``None``."""
        return self.process.poll() if self.process is not None else None

    def stop(self) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Supervision:
    """Restarts, under ``policy``, each of ``children`` that dies on its own (call ``check`` regularly)."""

    def __init__(self, children: Sequence[ServiceChild], policy: RestartPolicy, now: float) -> None:
        self._restarts = {child.label: Restarts(policy) for child in children}
        self._children = list(children)
        self._due: dict[str, float] = {}
        for child in children:
            self._restarts[child.label].started(now)

    def check(self, now: float) -> None:
        """Note the children that died, start again those whose delay is over; ``UnavailableError`` when one keeps
        dying (the caller stops the others)."""
        for child in self._children:
            label = child.label
            if label in self._due:
                if now >= self._due[label]:
                    del self._due[label]
                    child.start()
                    self._restarts[label].started(now)
                    click.echo(f"restarted {child.title} (pid {child.pid})", err=True)
                continue
            status = child.exited()
            if status is None:
                continue
            restarts = self._restarts[label]
            delay = restarts.died(now)
            if delay is None:
                raise UnavailableError(
                    f"{child.title} exited {restarts.rapid_failures} times in a row, each less than "
                    f"{restarts.policy.reset_after_s:g} s after its start (last status {status}); not restarting it"
                )
            click.echo(f"{child.title} (pid {child.pid}) exited with status {status}; restarting it in "
                       f"{delay:g} s", err=True)  # fmt: skip
            self._due[label] = now + delay

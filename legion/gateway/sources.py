"""Where routing tables come from: one ``RoutingSource`` protocol, three implementations.

- ``ApiRoutingSource``: the management API's ``GET /api/v1/routing`` long-poll (a change made through the API
  reaches the gateway at once) and ``POST /api/v1/routing/demand/<id>`` for scale from zero. The production one.
- ``FileRoutingSource``: a JSON file in the same format, re-read when it changes (a gateway without an API, the
  benchmark, and tests that run the gateway as a process).
- ``StaticRoutingSource``: in memory, ``publish(document)`` from the caller's event loop; the shipped fake that
  in-process tests drive, as httpx ships ``MockTransport``.

``RoutingWatcher`` owns the current table: it asks the source for the next one in a loop (backing off while the
source fails, keeping the table it has) and wakes requests that wait for a change (scale from zero).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Final, Protocol

import httpx
import orjson

from legion.core.errors import LegionError, UnauthorizedError, UnavailableError
from legion.core.tokens import TokenConfig, TokenIssuer
from legion.gateway.table import RoutingTable

log = logging.getLogger(__name__)
ROUTING_PATH: Final = "/api/v1/routing"
SELF_TOKEN_TTL_S: Final = 3600.0


class RoutingSource(Protocol):
    """Gives routing tables and passes on demand for replicas."""

    async def next(self, since: str | None) -> RoutingTable:
        """The current table if its etag differs from ``since``, else wait for the next one (or time out and
        return the same); raises a ``LegionError`` when the source cannot be read."""
        ...

    async def demand(self, deployment: str) -> None:
        """Ask for a replica of ``deployment`` (a request waits for it, or traffic keeps flowing to it)."""
        ...

    async def close(self) -> None: ...


class StaticRoutingSource:
    """Tables published in process; ``demands`` lists every deployment asked for, ``on_demand`` hears of each."""

    def __init__(self, document: Any | None = None, on_demand: Callable[[str], None] | None = None) -> None:
        self._table = RoutingTable.parse(document) if document is not None else None
        self._changed = asyncio.Event()
        self._on_demand = on_demand
        self.demands: list[str] = []

    def publish(self, document: Any) -> None:
        """Make ``document`` (the API's wire format) the current table; call from the gateway's event loop."""
        self._table = RoutingTable.parse(document)
        self._changed.set()
        self._changed = asyncio.Event()

    async def next(self, since: str | None) -> RoutingTable:
        while self._table is None or self._table.etag == since:
            await self._changed.wait()
        return self._table

    async def demand(self, deployment: str) -> None:
        self.demands.append(deployment)
        if self._on_demand is not None:
            self._on_demand(deployment)

    async def close(self) -> None:
        return None


class FileRoutingSource:
    """A routing document in a JSON file, checked every ``interval_s``; its etag is the content's hash."""

    def __init__(self, path: Path, interval_s: float = 0.1) -> None:
        self.path = path
        self.interval_s = interval_s
        self._seen: tuple[int, int, int] | None = None

    def _read(self) -> RoutingTable | None:
        try:
            stat = self.path.stat()
        except FileNotFoundError:
            return None
        seen = (stat.st_mtime_ns, stat.st_size, stat.st_ino)
        if seen == self._seen:
            return None
        self._seen = seen
        content = self.path.read_bytes()
        try:
            document = orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            log.warning("routing file %s is not valid JSON (%s); keeping the current table", self.path, exc)
            return None
        if isinstance(document, dict):
            document["etag"] = hashlib.sha256(content).hexdigest()[:16]
        try:
            return RoutingTable.parse(document)
        except LegionError as exc:
            log.warning("routing file %s: %s; keeping the current table", self.path, exc.detail)
            return None

    async def next(self, since: str | None) -> RoutingTable:
        while True:
            table = self._read()
            if table is not None and table.etag != since:
                return table
            await asyncio.sleep(self.interval_s)

    async def demand(self, deployment: str) -> None:
        log.info("deployment %s has no ready replica; a routing file cannot start one", deployment)

    async def close(self) -> None:
        return None


class ApiTokens:
    """The token the gateway shows the API: the one configured, or one it signs with the shared secret (roles
    ``viewer`` and ``gateway``: read the routing, deliver prediction records)."""

    def __init__(self, token: str | None, secret: str | None, audience: str) -> None:
        if token is None and secret is None:
            raise UnauthorizedError("the gateway needs an API token or the token secret to read the routing")
        self._token = token
        self._issuer = TokenIssuer(TokenConfig(secret=secret)) if secret and token is None else None
        self._audience = audience
        self._expires = 0.0

    def current(self) -> str:
        if self._issuer is not None and time.time() > self._expires - SELF_TOKEN_TTL_S / 4:
            self._token, claims = self._issuer.issue(
                "legion-gateway", self._audience, SELF_TOKEN_TTL_S, roles=["viewer", "gateway"]
            )
            self._expires = claims.expires_at
        assert self._token is not None
        return self._token


class ApiRoutingSource:
    """The management API's routing long-poll; every failure is an ``UnavailableError`` (or 401) saying why."""

    def __init__(self, url: str, tokens: ApiTokens, wait_s: float = 30.0, timeout_s: float = 10.0) -> None:
        self.url = url.rstrip("/")
        self._tokens = tokens
        self._wait_s = wait_s
        self._client = httpx.AsyncClient(timeout=timeout_s, trust_env=False)

    def _headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._tokens.current()}"}

    async def next(self, since: str | None) -> RoutingTable:
        params: dict[str, str | float] = {"wait": self._wait_s if since else 0.0}
        if since:
            params["since"] = since
        try:
            answer = await self._client.get(
                self.url + ROUTING_PATH, params=params, headers=self._headers(), timeout=self._wait_s + 10.0
            )
        except httpx.HTTPError as exc:
            raise UnavailableError(f"cannot read the routing from {self.url}: {exc!r}") from exc
        if answer.status_code in (401, 403):
            raise UnauthorizedError(f"the API at {self.url} refused the gateway's token ({answer.status_code})")
        if answer.status_code != 200:
            raise UnavailableError(f"the API at {self.url} answered {answer.status_code} for the routing")
        try:
            document = orjson.loads(answer.content)
        except orjson.JSONDecodeError as exc:
            raise UnavailableError(f"the API at {self.url} sent a routing document that is not JSON") from exc
        return RoutingTable.parse(document)

    async def demand(self, deployment: str) -> None:
        try:
            answer = await self._client.post(f"{self.url}{ROUTING_PATH}/demand/{deployment}", headers=self._headers())
        except httpx.HTTPError as exc:
            log.warning("cannot ask %s for a replica of %s: %r", self.url, deployment, exc)
            return
        if answer.status_code != 202:
            log.warning("the API answered %s to the demand for %s", answer.status_code, deployment)

    async def close(self) -> None:
        await self._client.aclose()


class RoutingWatcher:
    """The current table, kept up to date from a source; ``wait_for_change`` wakes on each new table."""

    def __init__(self, source: RoutingSource, on_update: Callable[[RoutingTable], None] | None = None) -> None:
        self.source = source
        self.table = RoutingTable.empty()
        self.loaded = False
        self.updates = 0
        self._on_update = on_update
        self._changed = asyncio.Event()

    def install(self, table: RoutingTable) -> None:
        self.table = table
        self.loaded = True
        self.updates += 1
        if self._on_update is not None:
            self._on_update(table)
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_for_change(self, timeout_s: float) -> None:
        """Return at the next new table, or after ``timeout_s``."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._changed.wait(), timeout_s)

    async def run(self) -> None:
        """Follow the source until cancelled; a failing source is retried with a growing pause (up to 5 s)."""
        pause = 0.2
        while True:
            try:
                table = await self.source.next(self.table.etag if self.loaded else None)
            except LegionError as exc:
                log.warning("routing not updated: %s; retrying in %.1f s", exc.detail, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 5.0)
                continue
            pause = 0.2
            if not self.loaded or table.etag != self.table.etag:
                self.install(table)
                log.info("routing %s: %d deployments, %d routes", table.etag, len(table.deployments),
                         len(table.routes))  # fmt: skip

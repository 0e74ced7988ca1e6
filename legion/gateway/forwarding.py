"""Sending a request to a deployment: pick a replica, call it over its pool, retry on another when allowed.

A request goes to the replicas of its deployment in ``Replicas.order``. It goes on to the next replica only
when nothing reached the model: the connection was refused (the replica is ejected for ``eject_s``), or it
was reset with no answer, which means the replica's process never read the whole request (a replica killed
with requests still in its socket buffer, a kept connection the replica had closed). A connection closed in
order with no answer is retried only for idempotent methods, since the replica may have run the request; one
that drops after part of an answer, a timeout or an answer that is not HTTP is the caller's 502 or 504.

Mirroring sends a copy to another deployment as a task of its own whose answer is dropped; at most
``mirror_max_in_flight`` copies per mirror deployment are in flight (more are dropped and counted), so a slow
or broken mirror can never hold back, fail or slow the callers of the primary, nor starve another mirror.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Final

from legion.core.errors import BadGatewayError, GatewayTimeoutError, LegionError, UnavailableError
from legion.gateway.balancing import Replicas
from legion.gateway.metrics import GatewayMetrics
from legion.gateway.table import Deployment, RoutingTable
from legion.gateway.upstream import (
    ConnectFailedError,
    ConnectionDroppedError,
    UpstreamPool,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamTimeoutError,
)

log = logging.getLogger(__name__)
IDEMPOTENT: Final = frozenset({b"GET", b"HEAD", b"OPTIONS", b"PUT", b"DELETE", b"TRACE"})


class Forwarder:
    """Pools per replica URL (kept across routing changes while the replica is listed), retries and mirrors."""

    def __init__(
        self,
        metrics: GatewayMetrics,
        *,
        eject_s: float,
        connect_timeout_s: float,
        upstream_timeout_s: float,
        max_idle: int,
        idle_timeout_s: float,
        mirror_max_in_flight: int,
    ) -> None:
        self.metrics = metrics
        self.replicas = Replicas(eject_s)
        self.timeout_s = upstream_timeout_s
        self._pool_options = {"connect_timeout_s": connect_timeout_s, "max_idle": max_idle,
                              "idle_timeout_s": idle_timeout_s}  # fmt: skip
        self._pools: dict[str, UpstreamPool] = {}
        self._mirror_limit = mirror_max_in_flight
        self._mirrors: set[asyncio.Task[None]] = set()
        self._mirroring: dict[str, int] = {}  # copies in flight per mirror deployment

    def _pool(self, url: str) -> UpstreamPool:
        pool = self._pools.get(url)
        if pool is None:
            pool = self._pools[url] = UpstreamPool(url, **self._pool_options)  # type: ignore[arg-type]
        return pool

    def prune(self, table: RoutingTable) -> None:
        """Close the pools of replicas no longer in ``table`` (requests in flight finish first)."""
        listed = {e for d in table.deployments.values() for e in d.endpoints}
        for url in [u for u in self._pools if u not in listed]:
            self._pools.pop(url).close()
        self.replicas.forget(listed)

    async def forward(
        self, deployment: Deployment, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> tuple[UpstreamResponse, str, float]:
        """The replica's answer, which replica gave it, and the seconds spent waiting on replicas."""
        waited = 0.0
        retry_reason = ""
        for url in self.replicas.order(deployment.id, deployment.endpoints):
            if retry_reason:
                self.metrics.retries.labels(deployment.id, retry_reason).inc()
            started = time.perf_counter()
            try:
                response = await self._pool(url).request(method, target, headers, body, self.timeout_s)
            except ConnectFailedError:
                waited += time.perf_counter() - started
                self.replicas.eject(url)
                retry_reason = "connect"
                continue
            except ConnectionDroppedError as exc:
                waited += time.perf_counter() - started
                self.replicas.eject(url)
                self._pools[url].close_idle()  # the replica's other kept connections are likely dead too
                if exc.unread or (not exc.received and method in IDEMPOTENT):
                    retry_reason = "unread" if exc.unread else "dropped"
                    continue
                raise BadGatewayError(f"a replica of {deployment.id} broke off the request: {exc}") from None
            except UpstreamTimeoutError:
                raise GatewayTimeoutError(
                    f"a replica of {deployment.id} did not answer within {self.timeout_s:g} s"
                ) from None
            except UpstreamProtocolError as exc:
                raise BadGatewayError(f"a replica of {deployment.id} answered garbage: {exc}") from None
            return response, url, waited + time.perf_counter() - started
        raise UnavailableError(f"no replica of deployment {deployment.id!r} accepts connections")

    def mirror(
        self, deployment: Deployment | None, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]],
        body: bytes, *, name: str,
    ) -> None:  # fmt: skip
        """Send a copy to ``deployment`` in the background; its answer and its failure go nowhere."""
        if deployment is None or not deployment.endpoints:
            self.metrics.mirrored.labels(name, "unavailable").inc()
            return
        in_flight = self._mirroring.get(deployment.id, 0)
        if in_flight >= self._mirror_limit:
            self.metrics.mirrored.labels(name, "dropped").inc()
            return
        self._mirroring[deployment.id] = in_flight + 1
        task = asyncio.create_task(self._mirror(deployment, method, target, headers, body))
        self._mirrors.add(task)
        task.add_done_callback(self._mirrors.discard)

    async def _mirror(
        self, deployment: Deployment, method: bytes, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes
    ) -> None:
        try:
            response, _, _ = await self.forward(deployment, method, target, headers, body)
            outcome = f"{response.status // 100}xx"
        except LegionError:
            outcome = "failed"
        except Exception:  # a mirror must never take anything down with it
            log.exception("mirroring to %s failed", deployment.id)
            outcome = "failed"
        finally:
            self._mirroring[deployment.id] -= 1
        self.metrics.mirrored.labels(deployment.id, outcome).inc()

    async def close(self) -> None:
        for task in list(self._mirrors):
            task.cancel()
        await asyncio.gather(*self._mirrors, return_exceptions=True)
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()

"""Choices the gateway makes per request: which deployment of a route, which replica of a deployment.

- ``WeightedChoice``: smooth weighted round robin (nginx's): over any window of ``sum(weights)`` requests
  each deployment gets exactly its weight, interleaved rather than in runs, so a 90/10 split is 90/10 at
  10,000 requests and at 100. State is kept per route and restarts when its weights change.
- ``Replicas``: round robin over a deployment's ready replicas, passing over a replica that refused a
  connection for ``eject_s`` (then it is tried again). Ejected replicas stay last in the order rather than
  dropped, so a request still has somewhere to go when all of them were ejected by a blip.
"""

from __future__ import annotations

import itertools
import time

from legion.gateway.table import Route


class WeightedChoice:
    """Which of a route's deployments takes the next request."""

    def __init__(self) -> None:
        self._state: dict[str, tuple[tuple[tuple[str, int], ...], list[int]]] = {}

    def pick(self, route: Route, present: frozenset[str] | None = None) -> str | None:
        """The next deployment of ``route`` among ``present`` ones (all when ``None``); ``None``: none is."""
        targets = route.targets
        if present is not None:
            targets = tuple(t for t in targets if t[0] in present)
        if not targets:
            return None
        if len(targets) == 1:
            return targets[0][0]
        state = self._state.get(route.id)
        if state is None or state[0] != targets:
            state = (targets, [0] * len(targets))
            self._state[route.id] = state
        current = state[1]
        total = 0
        best = 0
        for index, (_, weight) in enumerate(targets):
            current[index] += weight
            total += weight
            if current[index] > current[best]:
                best = index
        current[best] -= total
        return targets[best][0]


class Replicas:
    """Round robin over replicas, with replicas that refused connections passed over for a while."""

    def __init__(self, eject_s: float) -> None:
        self.eject_s = eject_s
        self._turn: dict[str, itertools.count[int]] = {}
        self._ejected: dict[str, float] = {}

    def order(self, deployment: str, endpoints: tuple[str, ...]) -> list[str]:
        """The replicas to try, in order: healthy ones from this request's turn on, then ejected ones."""
        if not endpoints:
            return []
        counter = self._turn.get(deployment)
        if counter is None:
            counter = self._turn[deployment] = itertools.count()
        start = next(counter) % len(endpoints)
        ordered = [*endpoints[start:], *endpoints[:start]]
        if not self._ejected:
            return ordered
        now = time.monotonic()
        healthy = [e for e in ordered if self._ejected.get(e, 0.0) <= now]
        if len(healthy) == len(ordered):
            return ordered
        return healthy + [e for e in ordered if self._ejected.get(e, 0.0) > now]

    def eject(self, endpoint: str) -> None:
        self._ejected[endpoint] = time.monotonic() + self.eject_s

    def restore(self, endpoint: str) -> None:
        self._ejected.pop(endpoint, None)

    def forget(self, keep: set[str]) -> None:
        """Drop what is known of replicas that are gone from the routing."""
        for endpoint in [e for e in self._ejected if e not in keep]:
            del self._ejected[endpoint]

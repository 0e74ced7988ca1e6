"""The public keys of an external identity provider (Keycloak, Dex), read from its JWKS document.

``JwksKeys.key_for(token)`` is the ``key_for`` of ``TokenVerifier``: the key named by the token's ``kid``, or
``UnknownKeyError``. Keys are fetched before the gateway serves, re-read every ``refresh_s``, and re-read at
once when a token names a key not seen yet (a key rotation) but for that reason at most every ``min_refresh_s``,
so a flood of tokens with made-up ``kid``s costs the identity provider one request per ``min_refresh_s``. A token
that arrives while a read is under way waits for it (and looks again if that read began before the rotation); one
that arrives before the first read succeeded waits for a read without spending the ration, so a gateway that was
slow to start still sees a rotation at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import httpx
import jwt

from legion.core.tokens import UnknownKeyError

log = logging.getLogger(__name__)


class JwksKeys:
    """Signing keys by ``kid`` from ``url``."""

    def __init__(self, url: str, refresh_s: float = 300.0, min_refresh_s: float = 10.0) -> None:
        self.url = url
        self.refresh_s = refresh_s
        self.min_refresh_s = min_refresh_s
        self._keys: dict[str | None, Any] = {}
        self._missed_at = -min_refresh_s  # when a token last named an unknown key
        self._loaded = False  # whether a read has succeeded yet
        self._pending: asyncio.Future[None] | None = None
        self._client = httpx.AsyncClient(timeout=5.0, trust_env=False)

    def key_for(self, token: str) -> Any:
        kid = jwt.get_unverified_header(token).get("kid")  # garbage raises DecodeError: "malformed"
        key = self._keys.get(kid if isinstance(kid, str) else None)
        if key is None and kid is None and len(self._keys) == 1:
            key = next(iter(self._keys.values()))  # a provider with one key may leave kid out
        if key is None:
            raise UnknownKeyError(kid)
        return key

    async def ensure_key(self, token: str) -> None:
        """Re-read the document first if ``token`` names a key not known yet (and the last read is not recent);
        while a read is under way, wait for it."""
        kid = key_id(token)
        if kid is None or kid in self._keys:
            return
        if self._pending is not None:  # join the read under way; it may have begun before the key rotated
            await asyncio.shield(self._pending)
            if kid in self._keys:
                return
        if not self._loaded:  # the first read has not succeeded yet: not a miss to ration
            await self.refresh()
            return
        if time.monotonic() - self._missed_at < self.min_refresh_s:
            return
        self._missed_at = time.monotonic()
        await self.refresh()

    async def refresh(self) -> None:
        """Read the document now (or join the read under way)."""
        if self._pending is None:
            self._pending = asyncio.ensure_future(self._fetch())
            self._pending.add_done_callback(self._done)
        await asyncio.shield(self._pending)

    def _done(self, _: asyncio.Future[None]) -> None:
        self._pending = None

    async def _fetch(self) -> None:
        try:
            answer = await self._client.get(self.url)
            answer.raise_for_status()
            keys = jwt.PyJWKSet.from_dict(answer.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWKSetError) as exc:
            log.warning("cannot read the JWKS document at %s: %r; keeping %d keys", self.url, exc, len(self._keys))
            return
        self._keys = {k.key_id: k.key for k in keys.keys if k.public_key_use in (None, "sig")}
        self._loaded = True

    async def run(self) -> None:
        """Read the document now, then every ``refresh_s``, until cancelled."""
        while True:
            await self.refresh()
            await asyncio.sleep(self.refresh_s)

    async def close(self) -> None:
        await self._client.aclose()


def key_id(token: str) -> str | None:
    """The ``kid`` of a token's header, without checking anything; ``None`` if it has none or is garbage."""
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        return None
    return kid if isinstance(kid, str) else None

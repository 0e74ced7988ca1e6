"""Who may call a model through the gateway: bearer JWTs checked completely, then against the model they address.

``Authenticator.authenticate`` checks a token with ``legion.core.tokens.TokenVerifier`` (signature with the one
configured algorithm, ``exp``, ``nbf``, issuer and audience when configured) and the revocation list of the
current routing table. A verified token is remembered until it expires, so a client's steady stream of requests
costs one dictionary lookup each rather than an HMAC or RSA check; revocation is still checked every time.
``authorize`` then checks the token's model scopes against the model a deployment serves: a token for model A
or version 1 does not open model B or version 2. Every refusal is an ``UnauthorizedError`` (401) whose message
says why without echoing the token.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Final

from legion.core.errors import UnauthorizedError
from legion.core.tokens import Claims, TokenVerifier, bearer_token
from legion.gateway.jwks import JwksKeys

CACHE_SIZE: Final = 8192


class Authenticator:
    """Checks bearer tokens for one audience; ``revoked()`` gives the current revocation list."""

    def __init__(
        self,
        verifier: TokenVerifier,
        audience: str | None,
        revoked: Callable[[], frozenset[str]],
        *,
        jwks: JwksKeys | None = None,
        leeway_s: float = 0.0,
    ) -> None:
        self._verifier = verifier
        self._audience = audience
        self._revoked = revoked
        self._jwks = jwks
        self._leeway_s = leeway_s
        self._cache: dict[str, Claims] = {}

    async def authenticate(self, authorization: str | None) -> Claims:
        token = bearer_token(authorization)
        claims = self._cache.get(token)
        if claims is None or claims.expires_at + self._leeway_s <= time.time():
            if claims is not None:
                del self._cache[token]
            if self._jwks is not None:
                await self._jwks.ensure_key(token)
            claims = self._verifier.verify(token, self._audience)
            if len(self._cache) >= CACHE_SIZE:
                self._cache.clear()
            self._cache[token] = claims
        if claims.token_id and claims.token_id in self._revoked():
            raise UnauthorizedError("the token has been revoked")
        return claims


def authorize(claims: Claims, identity: tuple[str, str]) -> None:
    """Refuse ``claims`` that do not open model ``identity`` (name, version)."""
    if not claims.allows_model(*identity):
        name, version = identity
        raise UnauthorizedError(f"the token does not open model {name!r} version {version!r}")

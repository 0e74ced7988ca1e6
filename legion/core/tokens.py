"""JSON Web Tokens: issued by the management API, verified by it and by the gateway.

Two kinds of token share one format (claims named after their use):

- API tokens carry ``roles`` (``admin``, ``data-scientist``, ``viewer``) and open the management API.
- Model tokens carry ``models`` scopes (``{"name": "census", "version": "1.0"}``; ``"*"`` for any version) and
  open the model APIs behind the gateway.

Every token has ``sub``, ``aud``, ``iss``, ``iat``, ``exp`` and a ``jti`` that can be revoked. Verification checks
the signature with the one algorithm configured (never the token's own ``alg``, so ``alg: none`` and
algorithm confusion fail), expiry, not-before, audience and issuer, then the revocation list; every failure is
an ``UnauthorizedError`` whose message says why without echoing the token.

Tokens of an external identity provider (Keycloak, Dex) are verified the same way with ``algorithm="RS256"`` and
a ``key_for`` that finds the public key of the token's ``kid`` (the gateway's JWKS key set); such tokens may carry
no ``jti`` or ``iss``, so ``required_claims`` and ``issuer=None`` (not checked) are configurable.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import jwt

from legion.core.errors import BadRequestError, InvalidInputError, UnauthorizedError

ROLES: Final = ("admin", "data-scientist", "viewer", "gateway")  # gateway: delivers prediction records
ANY_VERSION: Final = "*"


@dataclass(frozen=True, slots=True)
class ModelScope:
    """A model a token opens: one version, or every version with ``*``."""

    name: str
    version: str = ANY_VERSION

    def allows(self, name: str, version: str) -> bool:
        return self.name == name and self.version in (ANY_VERSION, version)


@dataclass(frozen=True, slots=True)
class Claims:
    """What a verified token says."""

    subject: str
    token_id: str
    expires_at: float
    roles: tuple[str, ...] = ()
    models: tuple[ModelScope, ...] = ()
    raw: Mapping[str, Any] = field(default_factory=dict)

    def allows_model(self, name: str, version: str) -> bool:
        return any(scope.allows(name, version) for scope in self.models)


@dataclass(frozen=True, slots=True)
class TokenConfig:
    """How tokens are signed and checked (HS256 with a shared secret by default)."""

    secret: str
    issuer: str | None = "legion"
    """Issued into ``iss`` and required on verification; ``None``: not checked (verification only)."""
    algorithm: str = "HS256"
    max_ttl_s: float = 30 * 24 * 3600.0
    leeway_s: float = 0.0
    required_claims: tuple[str, ...] = ("exp", "iat", "sub", "jti", "aud", "iss")
    """Claims a token must carry to be accepted (``aud`` only counts when an audience is checked)."""


def _scopes(value: object) -> tuple[ModelScope, ...]:
    if not isinstance(value, list):
        return ()
    scopes = []
    for item in value:
        if isinstance(item, Mapping) and isinstance(item.get("name"), str):
            scopes.append(ModelScope(item["name"], str(item.get("version", ANY_VERSION))))
    return tuple(scopes)


class TokenIssuer:
    """Signs tokens; the lifetime asked for is capped by ``max_ttl_s``."""

    def __init__(self, config: TokenConfig) -> None:
        self._config = config

    def issue(
        self,
        subject: str,
        audience: str,
        ttl_s: float,
        *,
        roles: Sequence[str] = (),
        models: Sequence[ModelScope] = (),
        now: float | None = None,
    ) -> tuple[str, Claims]:
        unknown = [r for r in roles if r not in ROLES]
        if unknown:
            raise InvalidInputError.for_fields(
                {"roles": f"unknown role(s) {', '.join(unknown)}; known: {', '.join(ROLES)}"}
            )
        if ttl_s <= 0:
            raise InvalidInputError.for_fields({"expiresIn": "must be a positive number of seconds"})
        issued = time.time() if now is None else now
        expires = issued + min(ttl_s, self._config.max_ttl_s)
        token_id = uuid.uuid4().hex
        payload: dict[str, Any] = {
            "sub": subject,
            "aud": audience,
            "iss": self._config.issuer or "legion",
            "iat": int(issued),
            "nbf": int(issued),
            "exp": int(expires),
            "jti": token_id,
        }
        if roles:
            payload["roles"] = list(roles)
        if models:
            payload["models"] = [{"name": m.name, "version": m.version} for m in models]
        token = jwt.encode(payload, self._config.secret, algorithm=self._config.algorithm)
        claims = Claims(subject, token_id, float(int(expires)), tuple(roles), tuple(models), payload)
        return token, claims


class UnknownKeyError(LookupError):
    """Raised by a ``key_for`` that has no key for the token (an unknown ``kid``)."""


class TokenVerifier:
    """Checks a token completely or refuses it with the reason.

    ``key_for(token)`` returns the key that checks the token's signature (for RS256: the identity provider's
    public key named by the token's ``kid``); without it the configured shared ``secret`` is used.
    """

    def __init__(
        self,
        config: TokenConfig,
        is_revoked: Callable[[str], bool] = lambda _: False,
        *,
        key_for: Callable[[str], Any] | None = None,
    ) -> None:
        self._config = config
        self._is_revoked = is_revoked
        self._key_for = key_for
        required = set(config.required_claims)
        if config.issuer is None:
            required.discard("iss")
        self._required = sorted(required)

    def verify(self, token: str, audience: str | None) -> Claims:
        """The token's claims; ``audience=None`` does not check ``aud``."""
        required = self._required if audience is not None else [c for c in self._required if c != "aud"]
        try:
            key = self._config.secret if self._key_for is None else self._key_for(token)
            payload = jwt.decode(
                token,
                key,
                algorithms=[self._config.algorithm],
                audience=audience,
                issuer=self._config.issuer,
                leeway=self._config.leeway_s,
                options={"require": required, "verify_aud": audience is not None},
            )
        except UnknownKeyError:
            raise UnauthorizedError("the token is signed with a key this server does not know") from None
        except jwt.ExpiredSignatureError:
            raise UnauthorizedError("the token has expired") from None
        except jwt.ImmatureSignatureError:
            raise UnauthorizedError("the token is not valid yet") from None
        except jwt.InvalidAudienceError:
            raise UnauthorizedError(f"the token is not meant for {audience}") from None
        except jwt.InvalidIssuerError:
            raise UnauthorizedError("the token was issued by someone else") from None
        except jwt.InvalidSignatureError:
            raise UnauthorizedError("the token's signature is not valid") from None
        except jwt.MissingRequiredClaimError as exc:
            raise UnauthorizedError(f"the token has no {exc.claim!r} claim") from None
        except jwt.InvalidTokenError:
            raise UnauthorizedError("the token is malformed or signed with another algorithm") from None
        token_id = str(payload.get("jti", ""))
        if token_id and self._is_revoked(token_id):
            raise UnauthorizedError("the token has been revoked")
        roles = payload.get("roles", [])
        return Claims(
            subject=str(payload.get("sub", "")),
            token_id=token_id,
            expires_at=float(payload.get("exp", float("inf"))),
            roles=tuple(r for r in roles if isinstance(r, str)) if isinstance(roles, list) else (),
            models=_scopes(payload.get("models")),
            raw=payload,
        )


def repeated_authorization() -> BadRequestError:
    """The error for a request with more than one ``Authorization`` header: which one counts is not the server's
    guess to make (a proxy may have added one), so every service refuses it alike."""
    return BadRequestError("the request has more than one Authorization header; send exactly one")


def bearer_token(authorization: str | None) -> str:
    """The token of an ``Authorization: Bearer ...`` header."""
    if not authorization:
        raise UnauthorizedError("no bearer token: send 'Authorization: Bearer <token>'")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise UnauthorizedError("the Authorization header must be 'Bearer <token>'")
    return token.strip()

"""Tokens: issued with capped lifetimes, verified completely; every attack is refused with its reason."""

from __future__ import annotations

import base64
import json
import time

import jwt
import pytest

from legion.core.errors import InvalidInputError, UnauthorizedError
from legion.core.tokens import ModelScope, TokenConfig, TokenIssuer, TokenVerifier, bearer_token
from tests.support.during_test import require_a_running_test

CONFIG = TokenConfig(secret="s3cret-for-tests-only-" + "x" * 42, max_ttl_s=3600)  # 64 bytes: long enough for HS512
ISSUER = TokenIssuer(CONFIG)
AUDIENCE = "legion-model-api"


def _b64(data: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def valid_token(**kwargs: object) -> str:
    require_a_running_test("a test token")
    token, _ = ISSUER.issue("alice", AUDIENCE, 600, models=[ModelScope("census", "1.0")], **kwargs)  # type: ignore[arg-type]
    return token


def test_a_valid_token_gives_its_claims() -> None:
    claims = TokenVerifier(CONFIG).verify(valid_token(), AUDIENCE)
    assert claims.subject == "alice"
    assert claims.allows_model("census", "1.0")
    assert not claims.allows_model("census", "2.0")
    assert not claims.allows_model("other", "1.0")


def test_lifetime_is_capped_by_the_configured_maximum() -> None:
    _, claims = ISSUER.issue("bob", AUDIENCE, 10 * 24 * 3600, roles=["viewer"])
    assert claims.expires_at - time.time() <= 3600 + 1


def now_payload(**changes: object) -> dict[str, object]:
    now = int(time.time())
    payload: dict[str, object] = {"sub": "alice", "aud": AUDIENCE, "iss": "legion", "iat": now, "nbf": now,
                                  "exp": now + 24 * 3600, "jti": "abc"}  # fmt: skip
    payload.update(changes)
    return {k: v for k, v in payload.items() if v is not None}


def attacks() -> dict[str, str]:
    """Tokens that must be refused, made when the test runs."""
    return {
        "alg none": _b64({"alg": "none", "typ": "JWT"}) + "." + _b64(now_payload()) + ".",
        "wrong key": jwt.encode(now_payload(), "another-secret-" + "y" * 49, algorithm="HS256"),
        "expired": jwt.encode(now_payload(exp=int(time.time()) - 10), CONFIG.secret, algorithm="HS256"),
        "not yet valid": jwt.encode(now_payload(nbf=int(time.time()) + 24 * 3600), CONFIG.secret, algorithm="HS256"),
        "wrong audience": jwt.encode(now_payload(aud="someone-else"), CONFIG.secret, algorithm="HS256"),
        "wrong issuer": jwt.encode(now_payload(iss="mallory"), CONFIG.secret, algorithm="HS256"),
        "no expiry": jwt.encode(now_payload(exp=None), CONFIG.secret, algorithm="HS256"),
        "other algorithm": jwt.encode(now_payload(), CONFIG.secret, algorithm="HS512"),
        "truncated": valid_token()[:-10],
        "garbage": "not.a.token",
        "empty": "",
    }


ATTACK_NAMES = ["alg none", "wrong key", "expired", "not yet valid", "wrong audience", "wrong issuer", "no expiry",
                "other algorithm", "truncated", "garbage", "empty"]  # fmt: skip


@pytest.mark.parametrize("name", ATTACK_NAMES)
def test_attacks_are_refused(name: str) -> None:
    attack = attacks()[name]
    with pytest.raises(UnauthorizedError) as caught:
        TokenVerifier(CONFIG).verify(attack, AUDIENCE)
    if attack:
        assert attack not in caught.value.detail  # the token is never echoed


def test_every_attack_is_named_for_parametrization() -> None:
    assert sorted(attacks()) == sorted(ATTACK_NAMES)


def test_revoked_tokens_are_refused() -> None:
    token, claims = ISSUER.issue("alice", AUDIENCE, 600, roles=["admin"])
    revoked = {claims.token_id}
    with pytest.raises(UnauthorizedError, match="revoked"):
        TokenVerifier(CONFIG, revoked.__contains__).verify(token, AUDIENCE)


@pytest.mark.parametrize(
    ("header", "message"),
    [(None, "no bearer token"), ("Basic abc", "must be 'Bearer <token>'"), ("Bearer ", "must be 'Bearer <token>'")],
)
def test_authorization_header_forms(header: str | None, message: str) -> None:
    with pytest.raises(UnauthorizedError, match=message):
        bearer_token(header)
    assert bearer_token("Bearer abc.def.ghi") == "abc.def.ghi"


def test_unknown_roles_and_bad_lifetimes_are_refused() -> None:
    with pytest.raises(InvalidInputError, match="unknown role"):
        ISSUER.issue("x", AUDIENCE, 60, roles=["root"])
    with pytest.raises(InvalidInputError, match="positive"):
        ISSUER.issue("x", AUDIENCE, 0)

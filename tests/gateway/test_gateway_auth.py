"""The JWT attack suite: every forged, stale, foreign or out-of-scope token gets a 401 with a JSON body; a valid
token gets through. HS256 tokens as the management API signs them, and RS256 tokens of an external identity
provider checked through its JWKS document (served here by a small local HTTP server)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from legion.gateway.jwks import JwksKeys
from legion.gateway.sources import StaticRoutingSource
from tests.gateway.conftest import SECRET, bearer, deployment, running_gateway, snapshot, token
from tests.support.server import ServerProcess

pytestmark = pytest.mark.anyio
INVOKE = "/model/toy/api/model/invoke"
BODY = {"columns": ["a"], "data": [[3]]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _b64(part: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(part).encode()).rstrip(b"=").decode()


DAY_S = 24 * 3600


def claims(**changes: Any) -> dict[str, Any]:
    now = int(time.time())
    payload = {"sub": "mallory", "aud": "legion-model-api", "iss": "legion", "iat": now, "nbf": now,
               "exp": now + DAY_S, "jti": "forged", "models": [{"name": "toy", "version": "1"}], **changes}  # fmt: skip
    return {k: v for k, v in payload.items() if v is not None}


def forged_hs256(key: bytes, kid: str, **changes: Any) -> str:
    """HS256 with any bytes as the key (PyJWT refuses a PEM there): the algorithm-confusion attack."""
    signing_input = f"{_b64({'alg': 'HS256', 'typ': 'JWT', 'kid': kid})}.{_b64(claims(**changes))}"
    signature = hmac.new(key, signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + base64.urlsafe_b64encode(signature).rstrip(b"=").decode()


def hs256(**changes: Any) -> str:
    return jwt.encode(claims(**changes), SECRET, algorithm="HS256")


def attacks(valid: str) -> dict[str, dict[str, str]]:
    """Every way in that must be refused, made when the test runs (``valid`` is a good token to tamper with)."""
    return {
        "no header": {},
        "empty bearer": {"Authorization": "Bearer"},
        "basic scheme": {"Authorization": "Basic dXNlcjpwYXNz"},
        "alg none": bearer(f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims())}."),
        "wrong key": bearer(jwt.encode(claims(), "another-secret-" + "k" * 49, algorithm="HS256")),
        "HS512 with the right key": bearer(jwt.encode(claims(), SECRET, algorithm="HS512")),
        "expired": bearer(hs256(exp=int(time.time()) - 5, iat=int(time.time()) - 700)),
        "not yet valid": bearer(hs256(nbf=int(time.time()) + DAY_S)),
        "wrong model": bearer(token(("census", "1"))),
        "wrong version": bearer(token(("toy", "2"))),
        "no model scope": bearer(hs256(models=None)),
        "API token": bearer(hs256(aud="legion-api", models=None, roles=["admin"])),
        "wrong issuer": bearer(hs256(iss="someone-else")),
        "no expiry": bearer(hs256(exp=None)),
        "truncated": bearer(valid[:-6]),
        "signature of another token": bearer(valid.rsplit(".", 1)[0] + "." + token(("toy", "*")).rsplit(".", 1)[1]),
        "garbage": bearer("garbage"),
        "garbage with dots": bearer("a.b.c"),
        "binary garbage": {"Authorization": b"Bearer \xff\xfe\x80"},  # type: ignore[dict-item]
    }


@pytest.fixture
def valid() -> str:
    """A good token for ``toy`` version 1, made when the test runs."""
    return token(("toy", "1"))


@pytest.fixture
def toy_source(toy_replica: ServerProcess) -> StaticRoutingSource:
    return StaticRoutingSource(snapshot([deployment("toy", [toy_replica.url], ("toy", "1"))]))


async def test_a_valid_token_opens_the_model(toy_source: StaticRoutingSource, valid: str) -> None:
    async with running_gateway(toy_source) as (url, _), httpx.AsyncClient(base_url=url) as client:
        answer = await client.post(INVOKE, json=BODY, headers=bearer(valid))
        assert answer.status_code == 200, answer.text
        assert answer.json()["prediction"] == [[6]]
        for path in ["/model/toy/api/model/info", "/api/model/toy/1/info", "/api/model/toy/1/invoke?a=4"]:
            assert (await client.get(path, headers=bearer(valid))).status_code == 200, path
        any_version = bearer(token(("toy", "*")))
        assert (await client.post(INVOKE, json=BODY, headers=any_version)).status_code == 200


async def test_every_attack_is_refused_with_a_json_401(toy_source: StaticRoutingSource, valid: str) -> None:
    async with running_gateway(toy_source) as (url, _), httpx.AsyncClient(base_url=url) as client:
        for name, headers in attacks(valid).items():
            answer = await client.post(INVOKE, json=BODY, headers=headers)
            assert answer.status_code == 401, (name, answer.text)
            assert answer.headers["content-type"] == "application/json"
            assert answer.headers["www-authenticate"].startswith("Bearer")
            error = answer.json()["error"]
            assert error and valid[:20] not in error, name
            info = await client.get("/model/toy/api/model/info", headers=headers)
            assert info.status_code == 401, f"info is protected like invoke: {name}"


async def test_version_paths_check_the_version_in_the_path(toy_source: StaticRoutingSource, valid: str) -> None:
    async with running_gateway(toy_source) as (url, _), httpx.AsyncClient(base_url=url) as client:
        for_v2 = bearer(token(("toy", "2")))
        assert (await client.get("/api/model/toy/1/info", headers=for_v2)).status_code == 401
        assert (await client.get("/api/model/toy/2/info", headers=for_v2)).status_code == 404  # not deployed
        assert (await client.get("/api/model/toy/2/info", headers=bearer(valid))).status_code == 401


async def test_health_and_metrics_stay_open(toy_source: StaticRoutingSource) -> None:
    async with running_gateway(toy_source) as (url, _), httpx.AsyncClient(base_url=url) as client:
        for path in ["/healthcheck", "/metrics", "/model/toy/healthcheck", "/model/toy/v2/health/ready",
                     "/model/toy/v2/health/live", "/model/toy/metrics"]:  # fmt: skip
            assert (await client.get(path)).status_code == 200, path


async def test_a_revoked_token_is_refused_as_soon_as_the_routing_says_so(toy_source: StaticRoutingSource,
                                                                        toy_replica: ServerProcess, valid: str) -> None:  # fmt: skip
    signed = token(("toy", "1"))
    jti = jwt.decode(signed, options={"verify_signature": False})["jti"]
    async with running_gateway(toy_source) as (url, app), httpx.AsyncClient(base_url=url) as client:
        assert (await client.post(INVOKE, json=BODY, headers=bearer(signed))).status_code == 200
        toy_source.publish(snapshot([deployment("toy", [toy_replica.url], ("toy", "1"))], revoked=[jti]))
        deadline = time.monotonic() + 5
        while app.watcher.table.revoked != {jti} and time.monotonic() < deadline:
            await app.watcher.wait_for_change(0.1)
        answer = await client.post(INVOKE, json=BODY, headers=bearer(signed))
        assert answer.status_code == 401
        assert answer.json() == {"error": "the token has been revoked"}
        assert (await client.post(INVOKE, json=BODY, headers=bearer(valid))).status_code == 200


# --- RS256 through an identity provider's JWKS ----------------------------------------------------------


class Jwks:
    """A JWKS document served on 127.0.0.1 (port 0) from a thread; ``keys`` can be changed (key rotation)."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.reads = 0
        jwks = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                jwks.reads += 1
                body = json.dumps({"keys": jwks.keys}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                return None

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/certs"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def add(self, kid: str, key: rsa.RSAPrivateKey) -> None:
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        self.keys.append({**jwk, "kid": kid, "use": "sig", "alg": "RS256"})

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def jwks() -> Iterator[Jwks]:
    served = Jwks()
    try:
        yield served
    finally:
        served.close()


def rsa_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


IDP = "http://127.0.0.1/realms/legion"


def rs256(key: rsa.RSAPrivateKey, kid: str, **changes: Any) -> str:
    payload = claims(**{"iss": IDP, **changes})
    return jwt.encode(payload, key, algorithm="RS256", headers={"kid": kid})


async def test_identity_provider_tokens_are_checked_with_its_jwks(toy_source: StaticRoutingSource,
                                                                 jwks: Jwks, valid: str) -> None:  # fmt: skip
    first, second, stranger = rsa_key(), rsa_key(), rsa_key()
    jwks.add("k1", first)
    public_pem = first.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    async with (
        running_gateway(toy_source, jwks_url=jwks.url, issuer=IDP) as (url, _),
        httpx.AsyncClient(base_url=url) as client,
    ):

        async def status(signed: str) -> int:
            return (await client.post(INVOKE, json=BODY, headers=bearer(signed))).status_code

        assert await status(rs256(first, "k1")) == 200
        assert await status(rs256(first, "k1", jti=None)) == 200  # an IdP token may carry no jti
        jwks.add("k2", second)  # the provider rotates keys: a new kid is looked up at once
        assert await status(rs256(second, "k2")) == 200
        refused = {
            "key not in the JWKS": rs256(stranger, "k1"),
            "unknown kid": rs256(stranger, "k9"),
            "expired": rs256(first, "k1", exp=int(time.time()) - 5),
            "not yet valid": rs256(first, "k1", nbf=int(time.time()) + DAY_S),
            "wrong issuer": rs256(first, "k1", iss="legion"),
            "wrong audience": rs256(first, "k1", aud="account"),
            "wrong model": rs256(first, "k1", models=[{"name": "census", "version": "1"}]),
            "HS256 signed with the public key": forged_hs256(public_pem, kid="k1", iss=IDP),
            "the API's HS256 token": valid,
        }
        for name, signed in refused.items():
            assert await status(signed) == 401, name
        reads = jwks.reads
        for number in range(20):  # made-up kids do not make the gateway hammer the provider
            assert await status(rs256(stranger, f"made-up-{number}")) == 401
        assert jwks.reads <= reads + 1


async def test_a_key_rotation_is_seen_at_once_even_when_the_first_token_came_before_the_first_read(
    jwks: Jwks,
) -> None:
    """A token that reaches a gateway before its first JWKS read (a slow start) must not spend the ration of
    re-reads: a rotation right after it is still looked up at once."""
    first, second = rsa_key(), rsa_key()
    jwks.add("k1", first)
    keys = JwksKeys(jwks.url, refresh_s=3600.0, min_refresh_s=3600.0)
    try:
        await keys.ensure_key(rs256(first, "k1"))  # no read yet: this one reads
        assert keys.key_for(rs256(first, "k1")) is not None
        jwks.add("k2", second)
        await keys.ensure_key(rs256(second, "k2"))
        assert keys.key_for(rs256(second, "k2")) is not None
        await keys.ensure_key(rs256(second, "k9"))  # a made-up kid now is rationed: no third read
        assert jwks.reads == 2
    finally:
        await keys.close()


async def test_two_authorization_headers_are_a_400_whatever_their_order(
    toy_source: StaticRoutingSource, valid: str
) -> None:
    async with running_gateway(toy_source) as (url, _), httpx.AsyncClient(base_url=url) as client:
        for pair in (["Bearer garbage", f"Bearer {valid}"], [f"Bearer {valid}", "Bearer garbage"]):
            answer = await client.post(INVOKE, json=BODY, headers=[("Authorization", value) for value in pair])
            assert answer.status_code == 400, answer.text
            assert "more than one Authorization header" in answer.json()["error"]
        assert (await client.post(INVOKE, json=BODY, headers=bearer(valid))).status_code == 200

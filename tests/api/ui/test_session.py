"""The dashboard's session over HTTP on a real API: login sets a cookie verified like a bearer token, the cookie
opens reads only, the token is never echoed or logged, and the pages load nothing from another origin."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import jwt
import pytest

from legion.api.ui.pages import STATIC_DIR
from tests.api.conftest import Api, cli_token, start_api

COOKIE = "legion_session"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    data_dir = tmp_path_factory.mktemp("ui-api")
    server = start_api(data_dir, "--runtime", "none")
    try:
        yield Api(
            server.url, data_dir, admin=cli_token(data_dir, "admin"), scientist="", viewer=cli_token(data_dir, "viewer")
        )
    finally:
        server.stop()
        assert api_tokens_not_in(server.stderr), "a token reached the API's log"


_TOKENS: list[str] = []


def api_tokens_not_in(text: str) -> bool:
    return not any(token in text for token in _TOKENS)


def login(api: Api, token: str, **headers: str) -> httpx.Response:
    _TOKENS.append(token)
    return httpx.post(f"{api.url}/ui/login", data={"token": token}, headers=headers)


def test_the_dashboard_sends_a_stranger_to_the_login_page(api: Api) -> None:
    answer = httpx.get(f"{api.url}/ui")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    page = httpx.get(f"{api.url}/ui/login")
    assert page.status_code == 200 and 'name="token"' in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_login_sets_a_strict_httponly_cookie_that_opens_reads_only(api: Api) -> None:
    answer = login(api, api.viewer)
    assert answer.status_code == 303 and answer.headers["location"] == "/ui"
    cookie = answer.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    expires = jwt.decode(api.viewer, options={"verify_signature": False})["exp"]
    max_age = int(re.search(r"Max-Age=(\d+)", cookie).group(1))  # type: ignore[union-attr]
    assert max_age <= expires - time.time() + 1  # the session ends with the token

    jar = {COOKIE: api.viewer}
    page = httpx.get(f"{api.url}/ui", cookies=jar)
    assert page.status_code == 200 and "Legion dashboard" in page.text
    assert httpx.get(f"{api.url}/api/v1/model/deployment", cookies=jar).status_code == 200
    who = httpx.get(f"{api.url}/api/v1/ui/session", cookies=jar).json()
    assert who == {"subject": "viewer", "roles": ["viewer"], "dev": False, "expiresAt": expires}

    admin = {COOKIE: api.admin}  # even an admin's session cannot write: a forged cross-site POST changes nothing
    written = httpx.post(f"{api.url}/api/v1/model/deployment", cookies=admin, json={"id": "x", "spec": {"image": "m"}})
    assert written.status_code == 401
    assert "reads only" in written.json()["detail"]


@pytest.mark.parametrize("case", ["garbage", "wrong-audience", "expired", "bad-signature", "no-role"])
def test_a_bad_token_is_refused_with_the_reason_and_never_echoed(api: Api, case: str) -> None:
    now = int(time.time())
    token = {
        "garbage": "not-a-jwt-at-all",
        "wrong-audience": api.signed(aud="legion-model-api"),
        "expired": api.signed(iat=now - 100, exp=now - 10),
        "bad-signature": api.signed()[:-4] + "AAAA",
        "no-role": api.signed(roles=None),
    }[case]
    answer = login(api, token)
    assert answer.status_code in {401, 403}
    assert "set-cookie" not in answer.headers
    assert token not in answer.text
    assert answer.text.count('class="error"') == 1 and re.search(r'class="error"[^>]*>[^<]+<', answer.text)
    # a cookie holding it opens nothing either
    assert httpx.get(f"{api.url}/ui", cookies={COOKIE: token}).status_code == 303
    assert httpx.get(f"{api.url}/api/v1/model/deployment", cookies={COOKIE: token}).status_code in {401, 403}


def test_a_login_posted_from_another_site_is_refused(api: Api) -> None:
    answer = login(api, api.viewer, Origin="http://evil.example")
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_a_revoked_token_ends_the_session_at_once(api: Api) -> None:
    token = cli_token(api.data_dir, "viewer")
    assert login(api, token).status_code == 303
    jti = jwt.decode(token, options={"verify_signature": False})["jti"]
    revoked = httpx.delete(f"{api.url}/api/v1/model/token/{jti}", headers=api.headers(api.admin))
    assert revoked.status_code == 200, revoked.text
    answer = httpx.get(f"{api.url}/ui", cookies={COOKIE: token})
    assert answer.status_code == 303
    assert f'{COOKIE}=""' in answer.headers["set-cookie"] and "Max-Age=0" in answer.headers["set-cookie"]


def test_logout_forgets_the_cookie(api: Api) -> None:
    answer = httpx.post(f"{api.url}/ui/logout", cookies={COOKIE: api.viewer})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login"
    assert "Max-Age=0" in answer.headers["set-cookie"]


def test_feedback_seams_are_empty_until_the_feedback_store_exists(api: Api) -> None:
    headers = api.headers(api.viewer)
    assert httpx.get(f"{api.url}/api/v1/quality", headers=headers).json() == []
    assert httpx.get(f"{api.url}/api/v1/predictions", params={"limit": 5}, headers=headers).json() == []
    assert httpx.get(f"{api.url}/api/v1/predictions", params={"limit": 0}, headers=headers).status_code == 422


def test_every_asset_is_shipped_and_served_from_this_origin(api: Api) -> None:
    names = sorted(p.name for p in STATIC_DIR.iterdir())
    assert names == ["app.js", "chart.js", "index.html", "login.html", "style.css"]
    for name in names:
        text = (STATIC_DIR / name).read_text()
        urls = re.findall(r"""(?:src|href)=["']([^"']+)["']|url\(([^)]+)\)|from ["']([^"']+)["']""", text)
        for url in ("".join(parts) for parts in urls):
            assert url.startswith(("/ui/", "./", "data:")), f"{name} loads {url} from elsewhere"
        assert httpx.get(f"{api.url}/ui/static/{name}").status_code == 200


def test_dev_mode_needs_no_login(tmp_path_factory: pytest.TempPathFactory) -> None:
    server = start_api(tmp_path_factory.mktemp("ui-dev"), "--runtime", "none", "--dev")
    try:
        assert httpx.get(f"{server.url}/ui").status_code == 200
        assert httpx.get(f"{server.url}/ui/login").headers["location"] == "/ui"
        assert httpx.get(f"{server.url}/api/v1/ui/session").json()["dev"] is True
    finally:
        server.stop()

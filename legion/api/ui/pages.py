"""The dashboard's pages: ``/ui`` (one page; its scripts read the API), ``/ui/login``, ``/ui/logout`` and
``/ui/static/*``.

The HTML is static: every value is filled in by ``static/app.js`` from JSON, through ``textContent`` (never
``innerHTML``), so nothing a user stored can run as script. Pages carry a Content-Security-Policy that allows
scripts, styles and requests from this origin only, which also keeps the promise that nothing is loaded from a CDN.
With ``--dev`` there is no login: every caller is the anonymous admin.
"""

from __future__ import annotations

import html
import time
from collections.abc import Callable
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles

from legion.api.ui.session import SESSION_COOKIE, end_session, same_origin, start_session
from legion.core.errors import UnauthorizedError
from legion.core.tokens import Claims

STATIC_DIR = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # "no-referrer" would make browsers post "Origin: null" from our own form
    "Cache-Control": "no-store",
}
MAX_TOKEN_CHARS = 16 * 1024


def _page(name: str, status: int = 200, error: str = "") -> HTMLResponse:
    text = (STATIC_DIR / name).read_text(encoding="utf-8").replace("{{error}}", html.escape(error))
    return HTMLResponse(text, status_code=status, headers=SECURITY_HEADERS)


def _to(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers={"Cache-Control": "no-store"})


def ui_router(authenticate: Callable[[str], Claims], *, dev: bool) -> APIRouter:
    """``authenticate`` verifies an API token as the bearer check does (raises ``UnauthorizedError``)."""
    router = APIRouter(prefix="/ui", tags=["dashboard"], include_in_schema=False)

    def signed_in(request: Request) -> bool:
        token = request.cookies.get(SESSION_COOKIE)
        if dev:
            return True
        if not token:
            return False
        try:
            return bool(authenticate(token).roles)  # a model token verifies but opens nothing here
        except UnauthorizedError:
            return False

    @router.get("")
    def dashboard(request: Request) -> Response:
        if signed_in(request):
            return _page("index.html")
        response = _to("/ui/login")
        if request.cookies.get(SESSION_COOKIE):
            end_session(response, request)  # expired or revoked: forget it
        return response

    @router.get("/login")
    def login_form(request: Request) -> Response:
        return _to("/ui") if dev else _page("login.html")

    @router.post("/login")
    async def login(request: Request) -> Response:
        if not same_origin(request):
            return _page("login.html", 403, "sign in from this dashboard's own page")
        form = await request.form(max_files=0, max_fields=4)
        token = form.get("token")
        if not isinstance(token, str) or not token.strip() or len(token) > MAX_TOKEN_CHARS:
            return _page("login.html", 400, "paste an API token (make one with: legion api token --role viewer)")
        try:
            claims = authenticate(token.strip())
        except UnauthorizedError as exc:  # says why without echoing the token
            return _page("login.html", 401, exc.detail)
        if not claims.roles:
            return _page("login.html", 403, "this token has no role on the management API (it is a model token?)")
        response = _to("/ui")
        start_session(response, request, token.strip(), claims.expires_at, time.time())
        return response

    @router.post("/logout")
    def logout(request: Request) -> Response:
        response = _to("/ui/login")
        end_session(response, request)
        return response

    return router


def static_files() -> StaticFiles:
    """The dashboard's scripts and styles (no secrets in them: served without a session)."""
    return StaticFiles(directory=STATIC_DIR)

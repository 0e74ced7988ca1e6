"""The dashboard's browser session: an API token in a cookie, accepted for reading only.

A browser cannot add ``Authorization: Bearer`` to a page navigation, so ``/ui/login`` takes an API token in a form
POST, verifies it exactly as a bearer token is verified (signature, expiry, audience, issuer, revocation) and keeps
it in a cookie that is ``HttpOnly`` (page scripts never see it), ``SameSite=Strict`` (no other site's page sends
it), ``Secure`` over HTTPS, and lives no longer than the token. The token is verified again on every request,
so a revoked or expired token ends the session at once; nothing about the session is stored on the server.

``request_token`` is what the API's ``caller`` dependency uses: the bearer header when there is one, otherwise the
cookie, and the cookie only for ``GET``/``HEAD``. The dashboard only reads, so a forged cross-site request could
never change anything even if a browser ignored ``SameSite``. Neither the token nor anything derived from it is
ever logged or echoed.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request, Response

from legion.api.auth import Caller
from legion.core.errors import UnauthorizedError
from legion.core.tokens import bearer_token

SESSION_COOKIE = "legion_session"
SAFE_METHODS = frozenset({"GET", "HEAD"})


def request_token(request: Request, authorization: str | None) -> str:
    """The API token of a request: ``Authorization: Bearer`` first, else the session cookie on a read."""
    if authorization:
        return bearer_token(authorization)
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie and request.method in SAFE_METHODS:
        return cookie
    if cookie:
        raise UnauthorizedError(f"the dashboard's session opens reads only; {request.method} needs a bearer token")
    return bearer_token(authorization)  # raises, saying how to authenticate


def start_session(response: Response, request: Request, token: str, expires_at: float, now: float) -> None:
    """Keep ``token`` (already verified) in the session cookie until the token itself expires."""
    response.set_cookie(
        SESSION_COOKIE,
        token,
        max_age=max(1, int(expires_at - now)),
        path="/",
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )


def end_session(response: Response, request: Request) -> None:
    response.delete_cookie(
        SESSION_COOKIE, path="/", secure=request.url.scheme == "https", httponly=True, samesite="strict"
    )


def same_origin(request: Request) -> bool:
    """False when the browser says a form was posted from another site (``Origin`` names another host)."""
    origin = request.headers.get("origin")
    if origin is None or origin == "null":
        return origin is None
    return origin.rstrip("/") == f"{request.url.scheme}://{request.url.netloc}"


def session_router(caller: Any, *, dev: bool) -> APIRouter:
    """``GET /api/v1/ui/session``: who the dashboard is signed in as (never the token itself)."""
    router = APIRouter(prefix="/api/v1/ui", tags=["dashboard"])

    @router.get("/session", summary="Who the caller is signed in as")
    def session(who: Caller = Depends(caller)) -> dict[str, Any]:
        who.can_read()
        expires = who.claims.expires_at
        return {"subject": who.claims.subject, "roles": list(who.roles), "dev": dev,
                "expiresAt": None if expires == float("inf") else expires}  # fmt: skip

    return router

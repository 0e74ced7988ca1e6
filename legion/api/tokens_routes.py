"""``/api/v1/model/token``: issue model-API tokens scoped to models and versions, and revoke them by id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from legion.api.auth import Caller
from legion.core.tokens import ANY_VERSION, ModelScope, TokenIssuer


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class ModelScopeIn(_Wire):
    name: str = Field(min_length=1, max_length=253)
    version: str = Field(default=ANY_VERSION, min_length=1, max_length=128)


class TokenRequest(_Wire):
    models: list[ModelScopeIn] = Field(min_length=1, max_length=100)
    expires_in: float | None = Field(default=None, gt=0, description="lifetime in seconds (capped by the server)")
    subject: str | None = Field(default=None, max_length=253)


class TokenResponse(_Wire):
    token: str
    token_id: str
    expires_at: datetime
    models: list[ModelScopeIn]


def token_router(
    issuer: TokenIssuer,
    audience: str,
    default_ttl_s: float,
    caller: Any,
    revoke: Any,
) -> APIRouter:
    """Routes for model tokens; ``caller`` is the auth dependency, ``revoke(jti, expires_at)`` the store's."""
    router = APIRouter(prefix="/api/v1/model/token", tags=["tokens"])

    @router.post("", status_code=201, response_model=TokenResponse, response_model_by_alias=True)
    def issue(request: TokenRequest, who: Caller = Depends(caller)) -> TokenResponse:
        who.can_issue_model_tokens()
        scopes = [ModelScope(m.name, m.version) for m in request.models]
        token, claims = issuer.issue(
            request.subject or who.claims.subject, audience, request.expires_in or default_ttl_s, models=scopes
        )
        return TokenResponse(
            token=token,
            token_id=claims.token_id,
            expires_at=datetime.fromtimestamp(claims.expires_at, UTC),
            models=request.models,
        )

    @router.delete("/{token_id}")
    def revoke_token(token_id: str, who: Caller = Depends(caller)) -> dict[str, str]:
        who.is_admin()
        revoke(token_id)
        return {"message": f"token {token_id} is revoked"}

    return router

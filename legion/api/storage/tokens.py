"""``TokenRevocations``: the ids (``jti``) of model API tokens revoked before they expire.

The API revokes; the gateway asks ``is_revoked`` for every token it has not seen lately. A row is only useful
until the token would have expired anyway, so ``prune`` (run periodically) drops those.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select

from legion.api.storage.database import EngineUser, transaction, upsert
from legion.api.storage.tables import RevokedTokenRow
from legion.api.storage.values import aware, check_names, utc_now

JTI_LENGTH = 255


class TokenRevocations(EngineUser):
    """Revoke token ids and check them.

    >>> revocations = TokenRevocations(engine)
    >>> revocations.revoke("6f1c...", expires_at=claims_exp)
    >>> revocations.is_revoked("6f1c...")
    True
    """

    def revoke(self, jti: str, expires_at: datetime) -> None:
        """Revoke the token; revoking it again changes nothing."""
        check_names("invalid token id", jti=(jti, JTI_LENGTH))
        values = {"jti": jti, "expires_at": aware(expires_at, "expires_at"), "revoked_at": utc_now()}
        statement = upsert(self._engine, RevokedTokenRow).values(**values).on_conflict_do_nothing()
        with transaction(self._engine, write=True) as connection:
            connection.execute(statement)

    def is_revoked(self, jti: str) -> bool:
        with transaction(self._engine) as connection:
            found = connection.execute(select(RevokedTokenRow.jti).where(RevokedTokenRow.jti == jti)).first()
        return found is not None

    def revoked(self) -> list[str]:
        """The ids revoked and not yet pruned (the gateway keeps this list to refuse them without asking)."""
        with transaction(self._engine) as connection:
            return list(connection.execute(select(RevokedTokenRow.jti).order_by(RevokedTokenRow.jti)).scalars())

    def prune(self, now: datetime | None = None) -> int:
        """Forget revocations of tokens expired by ``now`` (default: the current time); how many went."""
        cutoff = utc_now() if now is None else aware(now, "now")
        with transaction(self._engine, write=True) as connection:
            result = connection.execute(delete(RevokedTokenRow).where(RevokedTokenRow.expires_at <= cutoff))
        return int(result.rowcount)

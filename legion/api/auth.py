"""Who may do what on the management API.

Roles, from least to most: ``viewer`` reads everything; ``data-scientist`` also writes trainings, packagings,
deployments, routes and connections and issues model tokens; ``admin`` also manages integrations and revokes
tokens. ``gateway`` (what a gateway signs itself besides ``viewer``) may deliver prediction and feedback records
and wake a scaled-to-zero deployment (``POST /api/v1/routing/demand/...``); admins may do both too.
``legion api --dev`` turns all of it off (an anonymous admin), and says so on start.
"""

from __future__ import annotations

from dataclasses import dataclass

from legion.core.errors import ForbiddenError
from legion.core.tokens import Claims

ADMIN_ONLY_KINDS = frozenset({"ToolchainIntegration", "PackagingIntegration"})
DEV_CLAIMS = Claims(subject="dev", token_id="dev", expires_at=float("inf"), roles=("admin",))  # noqa: S106  # an id, not a secret


@dataclass(frozen=True, slots=True)
class Caller:
    claims: Claims

    @property
    def roles(self) -> tuple[str, ...]:
        return self.claims.roles

    def can_read(self) -> None:
        if not self.roles:
            raise ForbiddenError("this token has no role on the management API")

    def can_write(self, kind: str) -> None:
        self.can_read()
        if "admin" in self.roles:
            return
        if "data-scientist" in self.roles and kind not in ADMIN_ONLY_KINDS:
            return
        raise ForbiddenError(f"role(s) {', '.join(self.roles)} may not change {kind} objects")

    def can_issue_model_tokens(self) -> None:
        if not {"admin", "data-scientist"} & set(self.roles):
            raise ForbiddenError("only admins and data scientists may issue model tokens")

    def can_write_records(self) -> None:
        if not {"admin", "gateway"} & set(self.roles):
            raise ForbiddenError("only gateways and admins may deliver prediction and feedback records")

    def can_wake_deployments(self) -> None:
        """Only the gateway asks for a replica of a scaled-to-zero deployment (and admins, who may do anything)."""
        if not {"admin", "gateway"} & set(self.roles):
            raise ForbiddenError("only gateways and admins may wake a deployment")

    def is_admin(self) -> None:
        if "admin" not in self.roles:
            raise ForbiddenError("only admins may do this")

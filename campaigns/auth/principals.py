"""Who is calling: an organization's API key, or the platform acting inside an organization."""

from __future__ import annotations

from dataclasses import dataclass, field
from uuid import UUID

from campaigns.auth import scopes
from campaigns.errors import Forbidden


@dataclass(frozen=True)
class Principal:
    """Who is calling: the organization the key belongs to, and the key."""

    organization_id: UUID
    organization_name: str
    key_id: UUID
    key_name: str
    # As expanded by `scopes.expand`; the platform's own actors (SystemPrincipal) may do anything.
    scopes: frozenset[str] = field(default=frozenset({scopes.ADMIN}))

    def actor(self) -> dict[str, str]:
        return {"kind": "api_key", "id": str(self.key_id), "name": self.key_name}


@dataclass(frozen=True)
class SystemPrincipal(Principal):
    """The platform acting inside an organization without a key of its own (promoting a
    test's winner, simulating traffic): audited as a system actor."""

    actor_id: str = ""
    actor_name: str = ""

    def actor(self) -> dict[str, str]:
        return {"kind": "system", "id": self.actor_id, "name": self.actor_name}


def require_same_org(principal: Principal, claimed: str | None) -> None:
    """An `organizationId` a request names must be the caller's own."""
    if claimed is not None and claimed != str(principal.organization_id):
        raise Forbidden("organizationId does not match the organization of the API key", code="organization_mismatch")


def require_scope(principal: Principal, *any_of: str) -> None:
    """403 `insufficient_scope` unless the caller's key has one of `any_of` (or `admin`)."""
    if not scopes.allows(principal.scopes, *any_of):
        needed = " or ".join(repr(s) for s in any_of)
        raise Forbidden(
            f"this API key lacks the scope this needs: {needed}",
            code="insufficient_scope",
            details={"required": list(any_of), "granted": sorted(principal.scopes)},
        )

"""What an API key may do. A key carries scopes; each endpoint names the scopes any one of
which lets a caller in. `admin` lets in everywhere, and a write scope includes reading what
it writes."""

from __future__ import annotations

from collections.abc import Iterable

ADMIN = "admin"
CAMPAIGNS_READ = "campaigns:read"
CAMPAIGNS_WRITE = "campaigns:write"
EVENTS_WRITE = "events:write"  # what a voice pipeline needs: send events, assign variants, dial checks
WEBHOOKS_WRITE = "webhooks:write"
ANALYTICS_READ = "analytics:read"

ALL: tuple[str, ...] = (ADMIN, CAMPAIGNS_READ, CAMPAIGNS_WRITE, EVENTS_WRITE, WEBHOOKS_WRITE, ANALYTICS_READ)

# A scope also grants these.
_IMPLIES = {CAMPAIGNS_WRITE: {CAMPAIGNS_READ}}


def expand(granted: Iterable[str]) -> frozenset[str]:
    """The scopes a key's scopes amount to (with those they imply)."""
    out = set(granted)
    for scope in list(out):
        out |= _IMPLIES.get(scope, set())
    return frozenset(out)


def allows(granted: frozenset[str], *any_of: str) -> bool:
    """Whether a key with `granted` (as expanded) may do what needs one of `any_of`."""
    return ADMIN in granted or any(scope in granted for scope in any_of)

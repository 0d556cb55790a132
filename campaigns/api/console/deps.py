"""Who is looking at the console, and what the composition root built for it.

The console is a sub-application mounted on the API; what it uses (the pool, Redis, Temporal,
the caches, the analytics runtime, the settings) is the API's, read from the API app's state.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from starlette.datastructures import State

from campaigns.api.console import security
from campaigns.auth import scopes, sessions
from campaigns.auth.principals import Principal, require_scope
from campaigns.errors import AppError, Forbidden


class SignInRequired(AppError):
    """No session, an expired or ended one, or its key revoked: back to the sign-in page."""

    status, code = 401, "unauthorized"


# What each kind of console action needs (any one of the scopes).
READ = (scopes.CAMPAIGNS_READ,)
ANALYTICS = (scopes.ANALYTICS_READ, scopes.CAMPAIGNS_READ)
WRITE = (scopes.CAMPAIGNS_WRITE,)
WEBHOOKS = (scopes.WEBHOOKS_WRITE,)
DIAL_CHECK = (scopes.EVENTS_WRITE, scopes.CAMPAIGNS_READ)


def api_state(request: Request) -> State:
    return request.app.state.api.state


@dataclass(frozen=True)
class Viewer:
    """A signed-in person: their key's principal, and the session's CSRF token."""

    principal: Principal
    csrf: str
    key_hash: bytes  # what a live stream watches to end when the key is revoked

    def can(self, *any_of: str) -> bool:
        return scopes.allows(self.principal.scopes, *any_of)

    def require(self, *any_of: str) -> None:
        require_scope(self.principal, *any_of)

    @property
    def allowed(self) -> dict[str, bool]:
        """What the pages may offer (the server refuses the rest regardless)."""
        return {
            "write": self.can(*WRITE),
            "webhooks": self.can(*WEBHOOKS),
            "analytics": self.can(*ANALYTICS),
            "dial_check": self.can(*DIAL_CHECK),
        }


def base(viewer: Viewer, nav: str) -> dict[str, Any]:
    """What every signed-in page's layout needs."""
    return {"viewer": viewer, "csrf": viewer.csrf, "can": viewer.allowed, "nav": nav}


async def current_viewer(request: Request) -> Viewer:
    state = api_state(request)
    key = security.secret(state.settings)
    token = security.unsign(key, request.cookies.get(security.SESSION_COOKIE))
    if token is None:
        raise SignInRequired("sign in to continue")
    resumed = await sessions.resume(pool=state.pool, principals=state.principals, token=token)
    if resumed is None:
        raise SignInRequired("your session has ended; sign in again")
    principal, key_hash = resumed
    require_scope(principal, *READ)
    # The same budgets as the API (per key and per organization): a page is one request of its key.
    state.limits.check(principal, state.settings)
    request.state.principal = principal
    return Viewer(principal, security.csrf_token(key, token), key_hash)


Looker = Annotated[Viewer, Depends(current_viewer)]


async def form_of(request: Request, viewer: Viewer) -> dict[str, Any]:
    """A submitted form, once its CSRF token and origin check out."""
    if not security.same_origin(request):
        raise Forbidden("this form was sent from another site", code="csrf_failed")
    form = await request.form()
    if not security.valid_csrf(viewer.csrf, form.get("csrf")):
        raise Forbidden("this form has expired; reload the page and try again", code="csrf_failed")
    return {k: v for k, v in form.multi_items() if isinstance(v, str)}

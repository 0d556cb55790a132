"""Signing in (an API key exchanged for a session) and out."""

from __future__ import annotations

import secrets
from datetime import timedelta

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from campaigns.api.console import security, views
from campaigns.api.console.deps import Looker, api_state, form_of
from campaigns.auth import sessions
from campaigns.errors import AppError

router = APIRouter()


def _next(value: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    if value and value.startswith("/console/") and not value.startswith("//") and "\\" not in value:
        return value
    return "/console/campaigns"


@router.get("/")
async def home() -> RedirectResponse:
    return RedirectResponse("/console/campaigns", status_code=303)


def _sign_in_page(request: Request, *, error: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(24)
    response = views.page(
        request,
        "signin.html",
        {"csrf": token, "error": error, "next": _next(request.query_params.get("next"))},
        status,
    )
    security.set_cookie(response, request, security.SIGNIN_COOKIE, token, max_age=3600)
    return response


@router.get("/sign-in")
async def sign_in_form(request: Request) -> Response:
    return _sign_in_page(request)


@router.post("/sign-in")
async def sign_in(request: Request) -> Response:
    form = await request.form()
    expected = request.cookies.get(security.SIGNIN_COOKIE) or ""
    if not security.same_origin(request) or not expected or not security.valid_csrf(expected, form.get("csrf")):
        return _sign_in_page(request, error="The sign-in form expired; try again.", status=403)
    key = form.get("apiKey")
    if not isinstance(key, str) or not key.strip():
        return _sign_in_page(request, error="Enter an API key.", status=400)
    state = api_state(request)
    try:
        token, _ = await sessions.open_session(
            pool=state.pool,
            principals=state.principals,
            key=key,
            ttl=timedelta(hours=state.settings.console_session_hours),
        )
    except AppError as err:
        message = (
            "That key lacks the campaigns:read scope the console needs."
            if err.code == "insufficient_scope"
            else "That key is not valid, or it was revoked."
        )
        return _sign_in_page(request, error=message, status=err.status)
    nxt = form.get("next")
    response = RedirectResponse(_next(nxt if isinstance(nxt, str) else None), status_code=303)
    cookie = security.sign(security.secret(state.settings), token)
    security.set_cookie(
        response, request, security.SESSION_COOKIE, cookie, max_age=int(state.settings.console_session_hours * 3600)
    )
    security.clear_cookie(response, request, security.SIGNIN_COOKIE)
    return response


@router.post("/sign-out")
async def sign_out(request: Request, viewer: Looker) -> Response:
    await form_of(request, viewer)
    state = api_state(request)
    token = security.unsign(security.secret(state.settings), request.cookies.get(security.SESSION_COOKIE))
    if token is not None:
        await sessions.close(pool=state.pool, token=token)
    response = RedirectResponse("/console/sign-in", status_code=303)
    security.clear_cookie(response, request, security.SESSION_COOKIE)
    return response

"""The console's browser-side defences: the signed session cookie, CSRF tokens, and the
security headers on every response (a Content-Security-Policy that allows no inline script).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import os
import secrets
import time
from functools import lru_cache
from pathlib import Path

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaigns.settings import Settings

log = logging.getLogger("campaigns.console")

SESSION_COOKIE = "qc_session"
SIGNIN_COOKIE = "qc_signin"  # the sign-in form's CSRF token, before there is a session
COOKIE_PATH = "/console"

# Scripts and styles only from the platform itself: no inline script or style, no eval; no
# framing of the console (the widget preview is a frame *in* it, from the same origin).
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]


class SecurityHeaders:
    """Adds the headers above to every console response (pages, streams, static files), and
    `Server-Timing: app;dur=…`, the time until the response started (a page's whole render)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        began = time.perf_counter()

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                names = {name.lower() for name, _ in message.get("headers", [])}
                timing = (b"server-timing", f"app;dur={(time.perf_counter() - began) * 1000:.1f}".encode())
                extra = [h for h in HEADERS if h[0] not in names] + [timing]
                message["headers"] = list(message.get("headers", [])) + extra
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _key_file(data_dir: Path) -> bytes:
    """The embedded default: one key made on first use, readable by this user only."""
    path = data_dir / "console-secret.key"
    data_dir.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        pass
    else:
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_hex(32).encode() + b"\n")
        log.warning("CONSOLE_SECRET_KEY is not set: made a key in %s (set it when running several machines)", path)
    for _ in range(20):
        key = path.read_bytes().strip()
        if key:
            return key
        time.sleep(0.05)  # another process is writing it this very moment
    raise RuntimeError(f"{path} is empty")


@lru_cache(maxsize=8)
def _secret(configured: str | None, data_dir: str) -> bytes:
    return configured.encode() if configured else _key_file(Path(data_dir))


def secret(settings: Settings) -> bytes:
    return _secret(settings.console_secret_key, str(settings.data_dir))


def _mac(key: bytes, purpose: str, value: str) -> str:
    digest = hmac.new(key, f"{purpose}|{value}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")


def sign(key: bytes, token: str) -> str:
    """The cookie's value: the session token and its signature."""
    return f"{token}.{_mac(key, 'session', token)}"


def unsign(key: bytes, value: str | None) -> str | None:
    """The token of a cookie this platform signed; None for anything else."""
    if not value or "." not in value:
        return None
    token, _, signature = value.rpartition(".")
    return token if hmac.compare_digest(signature, _mac(key, "session", token)) else None


def csrf_token(key: bytes, session_token: str) -> str:
    """The session's CSRF token: derived from it, so nothing more is stored."""
    return _mac(key, "csrf", session_token)


def valid_csrf(expected: str, given: object) -> bool:
    return isinstance(given, str) and hmac.compare_digest(expected, given)


def same_origin(request: Request) -> bool:
    """A state-changing request must come from a console page: when the browser names its
    origin, it must be this one."""
    origin = request.headers.get("origin")
    if origin is None:
        return True  # not sent: the form's CSRF token still decides
    host = request.headers.get("host", "")
    return origin in (f"{request.url.scheme}://{host}", f"http://{host}", f"https://{host}")


def set_cookie(response, request: Request, name: str, value: str, *, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )


def clear_cookie(response, request: Request, name: str) -> None:
    response.delete_cookie(name, path=COOKIE_PATH, httponly=True, samesite="lax", secure=request.url.scheme == "https")

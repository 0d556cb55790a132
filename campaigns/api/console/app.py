"""The web console: server-rendered pages on the API's own services, mounted at /console.

A sub-application, so it has its own error pages (HTML, not the API's JSON), its own security
headers and no OpenAPI entries; everything it reads or changes goes through the same service
functions as the API, with the signed-in key's principal and scope checks.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaigns.api.console import security, views
from campaigns.api.console.deps import SignInRequired
from campaigns.api.console.pages import abtests, auth, campaigns, webhooks, widget
from campaigns.errors import AppError

log = logging.getLogger("campaigns.console")

MOUNT = "/console"


class ErrorPages:
    """An unexpected failure is logged once and answered with the console's error page
    (Starlette's own last-resort handler would log it again in the API app around it)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started or scope["type"] != "http":
                raise
            request = Request(scope)
            log.exception("unexpected error on %s %s", request.method, request.url.path)
            message = "something failed on our side; it has been logged. Try again shortly."
            await views.page(request, "error.html", {"status": 500, "message": message}, 500)(scope, receive, send)


def create_console(api: FastAPI) -> FastAPI:
    """The console application; `api` is the API app whose state (pool, caches…) it uses."""
    console = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    console.state.api = api
    console.add_middleware(ErrorPages)
    console.add_middleware(security.SecurityHeaders)
    static = StaticFiles(packages=[("campaigns.api.console", "static")])
    console.mount("/static", static, name="static")
    for module in (auth, campaigns, abtests, webhooks, widget):
        console.include_router(module.router)

    @console.exception_handler(SignInRequired)
    async def _sign_in(request: Request, exc: SignInRequired) -> Response:
        if request.method == "GET" and "text/event-stream" not in request.headers.get("accept", ""):
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            response: Response = RedirectResponse(f"{MOUNT}/sign-in?next={quote(target)}", status_code=303)
        else:
            response = views.page(request, "error.html", {"status": 401, "message": exc.message}, 401)
        security.clear_cookie(response, request, security.SESSION_COOKIE)
        return response

    @console.exception_handler(AppError)
    async def _app_error(request: Request, exc: AppError) -> Response:
        return views.page(request, "error.html", {"status": exc.status, "message": exc.message}, exc.status)

    @console.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> Response:
        return views.page(request, "error.html", {"status": 400, "message": "that address is not valid"}, 400)

    @console.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        message = "no such page" if exc.status_code == 404 else str(exc.detail)
        return views.page(request, "error.html", {"status": exc.status_code, "message": message}, exc.status_code)

    return console

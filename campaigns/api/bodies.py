"""What a request body may be: no larger than its route allows, and, when it is JSON, no
deeper than `JSON_MAX_DEPTH`.

Size: ASGI middleware, in front of everything, with a default limit and larger or smaller
ones for named paths. A declared `Content-Length` over the limit is answered 413 before the
app runs (no key lookup, nothing read); a body without one (chunked) is counted as it
arrives and refused the moment it passes the limit. Nothing is buffered on the way.
(Starlette's own limiter answers in plain text, and only once the app has run.)

Depth: a route class whose requests parse JSON with `domain.jsonbody` (orjson, then a walk
over containers), both for the bodies FastAPI reads into models and for those routes read
themselves, so no nesting reaches a recursive parser, validator or encoder. The same walk,
and a look at the query, refuse NUL characters, which Postgres cannot store.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from fastapi import Request, Response
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from campaigns.domain import jsonbody
from campaigns.errors import invalid


class BodyTooLarge(HTTPException):
    """Raised from `receive` while a body streams in. An HTTPException, so that FastAPI's
    own body reading passes it on (it turns other errors into a generic 400); the error
    handler renders it as `payload_too_large`."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, _message(limit))
        self.limit = limit


def _message(limit: int) -> str:
    return f"the request body is larger than {limit} bytes, the most this endpoint accepts"


def _declared_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


class BodyLimit:
    def __init__(self, app: ASGIApp, *, default: int, limits: Mapping[str, int]) -> None:
        self.app = app
        self.default = default
        self.limits = dict(limits)  # exact paths

    def limit_for(self, path: str) -> int:
        return self.limits.get(path, self.default)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["path"])
        declared = _declared_length(scope)
        if declared is not None and declared > limit:
            response = JSONResponse(
                {"error": _message(limit), "code": "payload_too_large", "details": {"limit": limit}},
                status_code=413,
                headers={"Connection": "close"},
            )
            await response(scope, receive, send)
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counted, send)


class JsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            depth = self.app.state.settings.json_max_depth
            try:
                self._json = jsonbody.loads(await self.body(), max_depth=depth)
            except jsonbody.InvalidJson as err:
                raise invalid([{"field": err.field, "reason": err.reason}]) from None
        return self._json


class JsonRoute(APIRoute):
    """Every router's route class (`APIRouter(route_class=JsonRoute)`)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        reads_model = self.body_field is not None

        async def route(request: Request) -> Response:
            request = JsonRequest(request.scope, request.receive)
            nul = [f"query.{k}" for k, v in request.query_params.multi_items() if "\x00" in k or "\x00" in v]
            if nul:
                # Postgres cannot store or compare text holding one.
                raise invalid([{"field": field, "reason": "must not contain a NUL character"} for field in nul])
            if reads_model and await request.body():
                # Parsed here first: FastAPI would answer its own 400 for any error raised
                # while it reads the body; it finds the document already parsed.
                await request.json()
            return await handler(request)

        return route

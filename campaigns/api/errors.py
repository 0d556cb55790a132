"""One error shape for every failure: `{"error", "code", "details"}` with the right status.

Bad input names the field and the reason; a dependency that is down is a 503, never
a 500; an unexpected failure is logged and answered without internals.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger("campaigns.api")


class AppError(Exception):
    status = 400
    code = "bad_request"

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        status: int | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(message)
        self.message = message
        self.code = code or self.code
        self.status = status or self.status
        self.details = details
        self.headers = headers


class BadRequest(AppError):
    status, code = 400, "invalid_request"


class Unauthorized(AppError):
    status, code = 401, "unauthorized"


class Forbidden(AppError):
    status, code = 403, "forbidden"


class NotFound(AppError):
    status, code = 404, "not_found"


class Conflict(AppError):
    status, code = 409, "conflict"


class PreconditionFailed(AppError):
    status, code = 412, "precondition_failed"


class Unavailable(AppError):
    status, code = 503, "unavailable"


def _field_path(loc: Sequence[Any]) -> str:
    path = ""
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += ("." if path else "") + str(part)
    return path or "(body)"


def _reason(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    return msg


def field_errors(errors: Iterable[dict[str, Any]], *, prefix: Sequence[Any] = ()) -> list[dict[str, str]]:
    """Pydantic errors as `[{field: "voiceSettings.speakingRate", reason: "..."}]`.

    Locations that come from the request carry where they came from ('body', 'query');
    the body's prefix is dropped, the others keep it ('query.limit')."""
    out = []
    for error in errors:
        loc = list(prefix) + list(error.get("loc", ()))
        if loc and loc[0] == "body":
            loc = loc[1:]
        # Tagged unions and function validators add their own names to the location.
        loc = [
            p
            for p in loc
            if not (isinstance(p, str) and ("function-" in p or p.startswith("tagged-union") or p == "[key]"))
        ]
        out.append({"field": _field_path(loc), "reason": _reason(error)})
    return out


def invalid(
    errors: ValidationError | list[dict[str, str]], message: str = "invalid request", prefix: Sequence[Any] = ()
) -> BadRequest:
    details = field_errors(errors.errors(), prefix=prefix) if isinstance(errors, ValidationError) else errors
    summary = "; ".join(f"{d['field']}: {d['reason']}" for d in details[:5])
    return BadRequest(f"{message}: {summary}" if summary else message, code="validation_error", details=details)


def _body(
    status: int, message: str, code: str, details: Any = None, headers: dict[str, str] | None = None
) -> JSONResponse:
    content: dict[str, Any] = {"error": message, "code": code}
    if details is not None:
        content["details"] = details
    if status == 401:
        headers = {**(headers or {}), "WWW-Authenticate": "Bearer"}
    return JSONResponse(content, status_code=status, headers=headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return _body(exc.status, exc.message, exc.code, exc.details, exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        err = invalid(list(field_errors(exc.errors())))
        return _body(err.status, err.message, err.code, err.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized", 403: "forbidden"}
        return _body(exc.status_code, str(exc.detail), codes.get(exc.status_code, "http_error"))

    @app.exception_handler(ValidationError)
    async def _pydantic(_: Request, exc: ValidationError) -> JSONResponse:
        err = invalid(exc)
        return _body(err.status, err.message, err.code, err.details)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        if _is_dependency_down(exc):
            log.warning("dependency unavailable on %s %s: %r", request.method, request.url.path, exc)
            return _body(503, "a service the API depends on is unavailable; retry shortly", "unavailable")
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return _body(500, "internal error", "internal")


def _is_dependency_down(exc: BaseException) -> bool:
    import redis.exceptions
    from temporalio.service import RPCError, RPCStatusCode

    if isinstance(
        exc,
        (
            OSError,
            asyncpg.exceptions.InterfaceError,
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
            redis.exceptions.ConnectionError,
            TimeoutError,
        ),
    ):
        return True
    if isinstance(exc, RPCError) and exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return True
    return False

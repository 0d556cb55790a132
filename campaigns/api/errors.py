"""One error shape for every failure: `{"error", "code", "details"}` with the right status.

Use cases raise the errors of `campaigns.errors`; this renders them, and FastAPI's and
pydantic's own. A dependency that is down is a 503, never a 500; an unexpected failure
is logged and answered without internals.
"""

from __future__ import annotations

import logging
from typing import Any

import redis.exceptions
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from campaigns import db
from campaigns.errors import AppError, field_errors, invalid

log = logging.getLogger("campaigns.api")


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
        codes = {
            404: "not_found",
            405: "method_not_allowed",
            401: "unauthorized",
            403: "forbidden",
            413: "payload_too_large",
        }
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
    if db.is_down(exc) or _any_in_chain(exc, redis.exceptions.ConnectionError):
        return True
    if isinstance(exc, RPCError) and exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED):
        return True
    # The API's Temporal client is lazy (it starts while Temporal is down); its first failed
    # connection surfaces from the SDK's core as a plain RuntimeError naming the connect.
    return type(exc) is RuntimeError and "connect" in str(exc).lower()


def _any_in_chain(exc: BaseException | None, kind: type[BaseException]) -> bool:
    for _ in range(16):  # chains are short; a cycle must not hang the handler
        if exc is None:
            return False
        if isinstance(exc, kind):
            return True
        exc = exc.__cause__ or exc.__context__
    return False

"""The errors use cases raise: each carries its HTTP status and a machine code, so one
handler in the HTTP layer renders every one as `{"error", "code", "details"}`.

Bad input names the field and the reason (`invalid`, `field_errors`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydantic import ValidationError


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


class PayloadTooLarge(AppError):
    status, code = 413, "payload_too_large"


class TooMany(AppError):
    """429: the caller holds as many of something as it may (say so in `code`); `Retry-After`."""

    status, code = 429, "too_many"


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


def _reason(error: Mapping[str, Any]) -> str:
    msg = str(error.get("msg", "invalid"))
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            msg = msg[len(prefix) :]
    if error.get("type") == "extra_forbidden":
        return "unknown field"
    return msg


def field_errors(errors: Iterable[Mapping[str, Any]], *, prefix: Sequence[Any] = ()) -> list[dict[str, str]]:
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

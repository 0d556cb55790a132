"""The OpenAPI document, with every error an operation can answer.

FastAPI documents success and a 422 this API never sends. Here each operation's errors
are derived from what the route does, in one place: a key → 401, 403 and 429; a path id
→ 404; any parameter or body → 400; a body → 413; `If-Match` → 412; a status change
through a workflow or an `Idempotency-Key` → 409; Postgres, Redis or Temporal behind it →
503. A route adds what these rules cannot see with `responses=` (a cap it enforces, an
origin it checks); every error response gets the one error schema, `{error, code, details}`.
Each operation also names the scopes its key needs (`security`, and its description).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI
from fastapi.dependencies.models import Dependant
from fastapi.openapi.utils import get_openapi
from fastapi.routing import APIRoute, iter_route_contexts

from campaigns.api import deps

ERROR_SCHEMA: dict[str, Any] = {
    "title": "Error",
    "type": "object",
    "required": ["error", "code"],
    "properties": {
        "error": {"type": "string", "description": "What went wrong, for people."},
        "code": {"type": "string", "description": "What went wrong, for programs (e.g. `validation_error`)."},
        "details": {
            "description": "For invalid input, every `{field, reason}`; otherwise facts about the error.",
            "anyOf": [
                {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "required": ["field", "reason"],
                        "properties": {"field": {"type": "string"}, "reason": {"type": "string"}},
                    },
                },
                {"type": "object"},
            ],
        },
    },
}

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}}}
_WWW_AUTHENTICATE = {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}}
_DEPENDENCIES = {
    deps.get_pool,
    deps.get_redis,
    deps.get_temporal,
    deps.get_analytics,
    deps.get_campaign_cache,
    deps.get_principals,
    deps.current_principal,
}


def api_routes(app: FastAPI) -> Iterator[APIRoute]:
    """Every API route of the app, however its routers were included."""
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        if isinstance(route, APIRoute):
            yield route


def _dependencies(dependant: Dependant) -> Iterator[Dependant]:
    stack = [dependant]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(current.dependencies)


def required_scopes(route: APIRoute) -> tuple[str, ...] | None:
    """The scopes any one of which lets a key call the route; None for a public route."""
    for dependant in _dependencies(route.dependant):
        wanted = getattr(dependant.call, "required_scopes", None)
        if wanted is not None:
            return tuple(wanted)
    return None


def _errors(route: APIRoute, method: str, body_limit: int) -> dict[int, str]:
    calls = {d.call for d in _dependencies(route.dependant)}
    own = route.dependant
    flat = [p for d in _dependencies(own) for p in (*d.query_params, *d.header_params, *d.path_params)]
    headers = {p.alias.lower() for d in _dependencies(own) for p in d.header_params}
    has_body = route.body_field is not None or "requestBody" in (route.openapi_extra or {})
    errors: dict[int, str] = {}
    if flat or has_body:
        errors[400] = "Invalid input: `details` lists every field and the reason."
    if deps.current_principal in calls:
        errors[401] = "No API key, or a bad or revoked one."
        errors[403] = "The key lacks the scope this needs (`insufficient_scope`), or `organizationId` is not its own."
        errors[429] = "Too many requests with this key, or too many open at once; retry after `Retry-After`."
    if any(d.path_params for d in _dependencies(own)):
        errors[404] = "No such object in the key's organization."
    if deps.get_temporal in calls or "idempotency-key" in headers:
        errors[409] = "A change that is not possible now (a refused transition, a reused idempotency key…)."
    if "if-match" in headers:
        errors[412] = "`If-Match` does not match the current version (`details.currentVersion`)."
    if method in ("POST", "PUT", "PATCH"):
        errors[413] = f"The body is larger than {body_limit} bytes."
    if calls & _DEPENDENCIES:
        errors[503] = "A service the API depends on is unavailable, or a workflow did not answer in time; retry."
    return errors


def _response(description: str, status: int) -> dict[str, Any]:
    out: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
    }
    if status == 429:
        out["headers"] = _RETRY_AFTER
    elif status == 401:
        out["headers"] = _WWW_AUTHENTICATE
    return out


def install(app: FastAPI, *, body_limit: Callable[[str], int], scheme: str = "HTTPBearer") -> None:
    """Make `app.openapi()` answer the document with every operation's errors and scopes."""
    document: dict[str, Any] = {}

    def build() -> dict[str, Any]:
        if document:
            return document
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes, tags=app.openapi_tags
        )
        schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
        for route in api_routes(app):
            if not route.include_in_schema:
                continue
            for method in sorted((route.methods or set()) - {"HEAD"}):
                operation = schema["paths"][route.path_format][method.lower()]
                responses: dict[str, Any] = operation["responses"]
                responses.pop("422", None)
                for code, description in _errors(route, method, body_limit(route.path_format)).items():
                    responses.setdefault(str(code), {"description": description})
                for status, response in responses.items():
                    if status[:1] in ("4", "5") and "content" not in response:
                        response.update(_response(response.get("description") or "Error", int(status)))
                operation["responses"] = dict(sorted(responses.items()))
                wanted = required_scopes(route)
                if wanted is not None:
                    operation["security"] = [{scheme: list(wanted)}]
                    needs = " or ".join(f"`{s}`" for s in wanted)
                    operation["description"] = (operation.get("description", "") + f"\n\nScope: {needs}.").strip()
        _drop_unused(schema["components"]["schemas"], ("HTTPValidationError", "ValidationError"))
        document.update(schema)
        return document

    app.openapi = build  # type: ignore[method-assign]


def _drop_unused(schemas: dict[str, Any], names: tuple[str, ...]) -> None:
    for name in names:
        schemas.pop(name, None)

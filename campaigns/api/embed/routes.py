"""Public widget endpoints under `/embed`, used by customers' pages (no API key: a
publishable widget key where one is needed)."""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import HTMLResponse, JSONResponse

from campaigns.api.bodies import JsonRoute
from campaigns.api.deps import Analytics, AppSettings, Db
from campaigns.errors import AppError, Forbidden, NotFound
from campaigns.widget import public as service

router = APIRouter(prefix="/embed", tags=["embed"], route_class=JsonRoute)

_SCRIPT = (resources.files("campaigns.api.embed") / "static" / "widget.js").read_bytes()
_SCRIPT_ETAG = '"' + hashlib.sha256(_SCRIPT).hexdigest()[:20] + '"'

Key = Annotated[str | None, Query(max_length=100, description="The widget's publishable key (qcw_pk_…)")]


def _cors(response: Response, origin: str | None) -> None:
    if origin:
        response.headers["Access-Control-Allow-Origin"] = origin
    response.headers["Vary"] = "Origin"


@router.get("/widget.js", include_in_schema=True, response_class=Response)
async def widget_script(request: Request) -> Response:
    """The widget loader: a small script without dependencies that any page can include."""
    headers = {
        "Cache-Control": "public, max-age=300",
        "ETag": _SCRIPT_ETAG,
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Access-Control-Allow-Origin": "*",
    }
    if request.headers.get("if-none-match") == _SCRIPT_ETAG:
        return Response(status_code=304, headers=headers)
    return Response(_SCRIPT, media_type="text/javascript; charset=utf-8", headers=headers)


@router.get(
    "/config",
    responses={
        403: {"description": "The page's origin may not use this widget (`origin_not_allowed`)."},
        404: {"description": "No widget has this key (`widget_not_found`)."},
    },
)
async def widget_config(
    request: Request,
    db: Db,
    settings: AppSettings,
    key: Key = None,
    preview: Annotated[bool, Query(description="Show the launcher whatever the campaign's state")] = False,
) -> JSONResponse:
    """What widget.js renders: the widget's look and behaviour, and whether to show it now."""
    widget = await service.by_key(db, key)
    if widget is None:
        raise NotFound("unknown widget key", code="widget_not_found")
    origin = request.headers.get("origin")
    if origin is not None and not service.origin_ok(origin, widget, settings):
        raise Forbidden(f"origin {origin!r} is not allowed to use this widget", code="origin_not_allowed")
    response = JSONResponse(service.public_config(widget, preview=preview))
    response.headers["Cache-Control"] = "no-cache" if preview else "public, max-age=15"
    _cors(response, origin)
    return response


@router.options("/events", include_in_schema=False)
async def events_preflight(request: Request) -> Response:
    """CORS preflight. The key travels in the body, so the origin is checked on the POST."""
    origin = request.headers.get("origin")
    response = Response(status_code=204)
    _cors(response, origin)
    response.headers["Access-Control-Allow-Methods"] = "POST"
    response.headers["Access-Control-Allow-Headers"] = "Content-Type"
    response.headers["Access-Control-Max-Age"] = "600"
    return response


@router.post(
    "/events",
    status_code=202,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                media: {"schema": service.EventBatch.model_json_schema()}
                for media in ("application/json", "text/plain")
            },
        }
    },
    responses={
        403: {"description": "The page's origin may not send this widget's events (`origin_not_allowed`)."},
        404: {"description": "No widget has this key (`widget_not_found`)."},
        409: {"description": "The campaign is archived (`campaign_archived`)."},
        429: {"description": "Too many events from this visitor; retry after `Retry-After`."},
    },
)
async def widget_events(request: Request, db: Db, settings: AppSettings, analytics: Analytics) -> JSONResponse:
    """Record widget.impression, widget.click and widget.display events sent by widget.js.

    Body (text/plain or application/json): `{"key": "qcw_pk_…", "events": [{"id", "type",
    "subjectId"?, "data"?}]}`, at most 50 events. Only from the widget's allowed origins."""
    body = await request.body()  # at most WIDGET_EVENTS_MAX_BODY_BYTES (api.bodies)
    key, raw_events = service.parse_batch(body, max_depth=settings.json_max_depth)
    widget = await service.by_key(db, key)
    if widget is None:
        raise NotFound("unknown widget key", code="widget_not_found")
    origin = request.headers.get("origin")
    if not service.origin_ok(origin, widget, settings):
        raise Forbidden(
            f"origin {origin!r} is not allowed to send this widget's events; add it to the widget's allowedOrigins",
            code="origin_not_allowed",
        )
    if widget.campaign_status.value == "archived":
        raise AppError("the campaign is archived", code="campaign_archived", status=409)
    client = request.client.host if request.client else "unknown"
    wait = service.within_rate(
        request.app.state.limits.widget,
        key=key,
        client=client,
        count=len(raw_events),
        per_minute=settings.widget_events_per_minute,
    )
    if wait is not None:
        limited = JSONResponse(
            {"error": f"too many widget events; retry in {wait:.0f} s", "code": "rate_limited"},
            status_code=429,
            headers={"Retry-After": str(max(1, round(wait)))},
        )
        _cors(limited, origin)
        return limited
    result = await service.record(db, analytics.realtime, analytics.directory, widget, raw_events)
    if result["accepted"]:
        analytics.refresher.nudge()
    response = JSONResponse(result, status_code=202)
    _cors(response, origin)
    return response


@router.get(
    "/preview/{campaignId}",
    response_class=HTMLResponse,
    responses={404: {"description": "No widget here: the key is wrong.", "content": {"text/html": {}}}},
)
async def widget_preview(
    campaign_id: Annotated[UUID, Path(alias="campaignId")],
    db: Db,
    settings: AppSettings,
    key: Key = None,
) -> HTMLResponse:
    """A page that shows the campaign's widget as configured (the embed code's previewUrl)."""
    widget = await service.by_key(db, key)
    if widget is None or widget.campaign_id != campaign_id:
        # One answer for a wrong key and an unknown campaign: neither says the other exists.
        return HTMLResponse(
            "<!doctype html><title>Not found</title><p>No widget preview here: check the link's key.</p>",
            status_code=404,
            headers=service.preview_headers(settings),
        )
    return HTMLResponse(service.preview_page(widget, settings), headers=service.preview_headers(settings))

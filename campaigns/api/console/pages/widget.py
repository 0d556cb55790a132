"""The widget page: its settings with a live preview, its numbers, and the embed code to copy."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit
from uuid import UUID

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse, Response

from campaigns.api.console import views
from campaigns.api.console.deps import WRITE, Looker, Viewer, api_state, base, form_of
from campaigns.campaigns import service as campaigns_service
from campaigns.errors import AppError
from campaigns.widget import service

router = APIRouter()


async def _page(
    request: Request, viewer: Viewer, campaign_id: UUID, *, values: dict | None = None, errors=None, status=200
) -> Response:
    state = api_state(request)
    args: dict[str, Any] = {
        "pool": state.pool,
        "cache": state.campaign_cache,
        "principal": viewer.principal,
        "campaign_id": campaign_id,
    }
    campaign = await campaigns_service.get(**args)
    widget = await service.get(**args, settings=state.settings)
    code = await service.embed_code(**args, settings=state.settings, callbacks={})
    numbers = await service.analytics(**args, timeframe="7d")
    preview = urlsplit(widget.preview_url)
    if values is None:
        values = {
            "enabled": "on" if widget.enabled else "",
            "launcherText": widget.styling.launcher_text,
            "title": widget.styling.title,
            "primaryColor": widget.styling.primary_color,
            "position": widget.styling.position,
            "theme": widget.styling.theme,
            "greeting": widget.behavior.greeting or "",
            "allowedOrigins": "\n".join(widget.integration.allowed_origins),
        }
    return views.page(
        request,
        "widget.html",
        {
            **base(viewer, "campaigns"),
            "campaign": campaign,
            "widget": widget,
            "code": code,
            "numbers": numbers,
            # Same origin as the console, whatever host name the browser used to reach it.
            "preview_path": preview.path + (f"?{preview.query}" if preview.query else ""),
            "values": values,
            "errors": errors or [],
            "done": request.query_params.get("done") == "saved",
        },
        status,
    )


@router.get("/campaigns/{campaign_id}/widget")
async def widget_page(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    return await _page(request, viewer, campaign_id)


@router.post("/campaigns/{campaign_id}/widget")
async def save_widget(request: Request, viewer: Looker, campaign_id: UUID) -> Response:
    viewer.require(*WRITE)
    form = await form_of(request, viewer)
    state = api_state(request)
    origins = [o.strip() for o in (form.get("allowedOrigins") or "").splitlines() if o.strip()]
    patch = {
        "enabled": form.get("enabled") == "on",
        "styling": {
            "launcherText": form.get("launcherText", ""),
            "title": form.get("title", ""),
            "primaryColor": form.get("primaryColor", ""),
            "position": form.get("position", ""),
            "theme": form.get("theme", ""),
        },
        "behavior": {"greeting": (form.get("greeting") or "").strip() or None},
        "integration": {"allowedOrigins": origins},
    }
    try:
        await service.update(
            pool=state.pool,
            cache=state.campaign_cache,
            principal=viewer.principal,
            campaign_id=campaign_id,
            patch=patch,
            settings=state.settings,
        )
    except AppError as err:
        if err.status not in (400, 409):
            raise
        errors = err.details if isinstance(err.details, list) else [{"field": "", "reason": err.message}]
        return await _page(request, viewer, campaign_id, values=form, errors=errors, status=err.status)
    return RedirectResponse(f"/console/campaigns/{campaign_id}/widget?done=saved", status_code=303)

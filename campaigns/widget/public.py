"""The public side of the widget: what a customer's page may read and send with a
publishable key, and the preview page.

A publishable key is public (it sits in the page), so it grants little: reading the
widget's look and whether to show it, and sending `widget.*` events for its own campaign
only, only from the widget's allowed origins (and the platform's own preview page). The
Origin check is done here, on the server: a browser's CORS rules only stop a page from
reading an answer, not a request from arriving.
"""

from __future__ import annotations

import functools
import html
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

import asyncpg
from pydantic import BaseModel, Field, ValidationError

from campaigns.analytics.directory import CampaignDirectory
from campaigns.analytics.realtime import Realtime
from campaigns.domain import embed, jsonbody
from campaigns.domain.config import CampaignConfiguration, CampaignStatus
from campaigns.domain.widget import WidgetSettings, normalize_origin, origin_allowed
from campaigns.errors import BadRequest, invalid
from campaigns.limits import WindowLimiter
from campaigns.settings import Settings
from campaigns.widget import page_events as widget_events
from campaigns.widget import repository as repo
from campaigns.widget import service as widgets

MAX_EVENTS = 50


@dataclass(frozen=True)
class PublicWidget:
    campaign_id: UUID
    organization_id: UUID
    campaign_name: str
    campaign_status: CampaignStatus
    campaign_config: CampaignConfiguration
    settings: WidgetSettings
    publishable_key: str


async def by_key(pool: asyncpg.Pool, key: str | None) -> PublicWidget | None:
    if not key or not key.startswith(widgets.KEY_PREFIX) or len(key) > 100:
        return None
    row = await repo.by_key(pool, key)
    if row is None:
        return None
    return PublicWidget(
        campaign_id=row["campaign_id"],
        organization_id=row["organization_id"],
        campaign_name=row["campaign_name"],
        campaign_status=CampaignStatus(row["campaign_status"]),
        campaign_config=CampaignConfiguration.model_validate(row["campaign_config"]),
        settings=WidgetSettings.model_validate(row["settings"]),
        publishable_key=row["publishable_key"],
    )


def platform_origin(settings: Settings) -> str:
    return normalize_origin(settings.base_url)


def allowed_origins(widget: PublicWidget, settings: Settings) -> list[str]:
    return [platform_origin(settings), *widget.settings.integration.allowed_origins]


def origin_ok(origin: str | None, widget: PublicWidget, settings: Settings) -> bool:
    return origin_allowed(origin, allowed_origins(widget, settings))


def window_open(widget: PublicWidget) -> bool:
    """Whether the campaign's calling window is open now. A campaign without windows may
    call at any hour; one with windows counts as open until the campaign workflow reports
    its window state (scheduling), so `showOnlyDuringWindow` hides nothing before then."""
    return True


def hidden_reason(widget: PublicWidget) -> str | None:
    """Why a page should not show the launcher now (None: show it)."""
    if not widget.settings.enabled:
        return "widget_disabled"
    if widget.campaign_status != CampaignStatus.ACTIVE:
        return f"campaign_{widget.campaign_status.value}"
    if widget.settings.behavior.show_only_during_window and not window_open(widget):
        return "window_closed"
    return None


def public_config(widget: PublicWidget, *, preview: bool) -> dict[str, Any]:
    """What widget.js renders from. In a preview the launcher shows whatever the state."""
    reason = hidden_reason(widget)
    return {
        "campaignId": str(widget.campaign_id),
        **widgets.public_configuration(widget.settings),
        "visible": reason is None or preview,
        "hiddenReason": reason,
        "windowOpen": window_open(widget),
        "preview": preview,
    }


# --- Events --------------------------------------------------------------------------


class EventBatch(BaseModel):
    """What widget.js posts to /embed/events."""

    key: str = Field(max_length=100, description="The widget's publishable key (qcw_pk_…)")
    events: list[dict[str, Any]] = Field(min_length=1, max_length=MAX_EVENTS)


def parse_batch(body: bytes, *, max_depth: int = jsonbody.DEFAULT_MAX_DEPTH) -> tuple[str, list[dict[str, Any]]]:
    """The key and the raw events of a request body (sent as text/plain or application/json)."""
    try:
        batch = EventBatch.model_validate(jsonbody.loads(body, max_depth=max_depth))
    except jsonbody.InvalidJson as err:
        raise BadRequest(
            f'body must be JSON {{"key": "qcw_pk_…", "events": [...]}}: {err.field}: {err.reason}',
            code="invalid_json",
            details=[{"field": err.field, "reason": err.reason}],
        ) from None
    except ValidationError as err:
        raise invalid(err, "invalid widget events") from None
    return batch.key, batch.events


def within_rate(limiter: WindowLimiter, *, key: str, client: str, count: int, per_minute: int) -> float | None:
    """Count `count` events for this key and client in the current minute; None when within
    the limit, else the seconds until the next minute (and nothing counted).

    Shared by all replicas through Redis, decided without waiting for it. While Redis is
    down it fails open per process, on purpose: each process keeps the limit on what it
    sees, since widget events are sent once (`sendBeacon` never retries) and refusing them
    all would lose every event the API could have recorded (Postgres does not need Redis)."""
    return limiter.allow([(f"{key}:{client}", per_minute)], cost=count)


async def record(
    pool: asyncpg.Pool,
    realtime: Realtime,
    directory: CampaignDirectory,
    widget: PublicWidget,
    raw_events: list[dict[str, Any]],
) -> dict[str, Any]:
    """Validate each event on its own and record the good ones for the widget's campaign."""
    now = datetime.now(UTC)
    accepted: list[widget_events.WidgetEvent] = []
    positions: list[int] = []  # each accepted event's index in the request
    rejected: list[dict[str, Any]] = []
    for index, raw in enumerate(raw_events):
        try:
            accepted.append(widget_events.WidgetEvent.model_validate(raw))
            positions.append(index)
        except ValidationError as err:
            first = err.errors()[0]
            field = ".".join(str(p) for p in first.get("loc", ())) or "(event)"
            rejected.append({"index": index, "reason": f"{field}: {first.get('msg', 'invalid')}"})
    result = await widget_events.ingest(
        pool,
        realtime,
        directory,
        organization_id=widget.organization_id,
        campaign_id=widget.campaign_id,
        events=accepted,
        at=now,
    )
    later = [{**r, "index": positions[r["index"]]} for r in result.rejected]
    return {
        "accepted": result.accepted,
        "duplicates": result.duplicates,
        "rejected": sorted(rejected + later, key=lambda r: r["index"]),
    }


# --- The preview page ----------------------------------------------------------------

_PAGE_CSS = """
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:#111827;background:#f3f4f6}
main{max-width:760px;margin:0 auto;padding:40px 24px 160px}
h1{font-size:24px;margin:0 0 4px}.name{font-size:18px;color:#374151;margin:0 0 24px;overflow-wrap:anywhere}
.card{background:#fff;border-radius:12px;padding:20px 24px;margin:0 0 16px;box-shadow:0 1px 3px rgba(0,0,0,.08)}
.note{color:#6b7280;font-size:14px}code,pre{font:13px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace}
pre{background:#111827;color:#e5e7eb;padding:16px;border-radius:8px;overflow:auto;white-space:pre-wrap;word-break:break-all}
"""


def preview_page(widget: PublicWidget, settings: Settings) -> str:
    links = widgets.urls(settings, str(widget.campaign_id), widget.publishable_key)
    configuration = widgets.public_configuration(widget.settings)
    render = functools.partial(
        embed.render,
        campaign_id=str(widget.campaign_id),
        campaign_name=widget.campaign_name,
        publishable_key=widget.publishable_key,
        script_url=links["script_url"],
        api_url=links["api_url"],
        configuration=configuration,
        callbacks={},
    )
    snippet = render()
    live = render(preview=True)
    reason = hidden_reason(widget)
    state = (
        "Your site shows the launcher now."
        if reason is None
        else f"Your site does not show the launcher now ({reason.replace('_', ' ')}); this preview does."
    )
    e = html.escape
    return f"""<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="robots" content="noindex">
<title>Widget preview · {e(widget.campaign_name)}</title>
<style>{_PAGE_CSS}</style>
</head>
<body>
<main>
<h1>Widget preview</h1>
<p class="name">{e(widget.campaign_name)}</p>
<div class="card">
<p>The launcher in the corner is the widget as configured. {e(state)}</p>
<p class="note">Impressions, clicks and display time from this page count in the widget's analytics.</p>
</div>
<div class="card">
<p><strong>Embed code</strong>: paste it before <code>&lt;/body&gt;</code> on each page of an allowed origin.</p>
<pre>{e(snippet)}</pre>
</div>
</main>
{live}
</body>
</html>
"""


def preview_headers(settings: Settings) -> dict[str, str]:
    """A strict policy: the page runs no inline script at all, only widget.js."""
    origin = platform_origin(settings)
    return {
        "Content-Security-Policy": (
            f"default-src 'none'; script-src 'self' {origin}; connect-src 'self' {origin}; "
            "img-src 'self' https: data:; style-src 'self' 'unsafe-inline'; base-uri 'none'; "
            "form-action 'none'; frame-ancestors 'self'"
        ),
        "Cache-Control": "no-store",
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }

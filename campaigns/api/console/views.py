"""Rendering: the Jinja environment (autoescaping everything), its filters, and `page`."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape
from starlette.requests import Request
from starlette.responses import HTMLResponse

from campaigns.domain import charts
from campaigns.domain.timeutil import zone

env = Environment(
    loader=PackageLoader("campaigns.api.console", "templates"),
    # Every template is HTML (or SVG inside it): tenant data is always escaped.
    autoescape=select_autoescape(default=True, default_for_string=True),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def local(value: datetime | None, tz: str, fmt: str = "%a %d %b %H:%M") -> str:
    """An instant on the campaign's clock."""
    if value is None:
        return "—"
    return value.astimezone(zone(tz)).strftime(fmt)


def utc(value: datetime | None) -> str:
    return "—" if value is None else value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def iso(value: datetime | None) -> str:
    return "" if value is None else value.astimezone(UTC).isoformat()


def compact_json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)


def pretty_json(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=False, ensure_ascii=False, default=str)


env.filters.update(
    local=local,
    utc=utc,
    iso=iso,
    number=charts.number,
    money=charts.money,
    percent=charts.percent,
    signed_percent=charts.signed_percent,
    pretty_json=pretty_json,
    compact_json=compact_json,
)


def page(request: Request, template: str, context: dict[str, Any], status_code: int = 200) -> HTMLResponse:
    """Render a page; HTML is never cached (it carries the CSRF token and tenant data)."""
    html = env.get_template(template).render(request=request, path=request.url.path, **context)
    return HTMLResponse(html, status_code=status_code, headers={"Cache-Control": "no-store"})

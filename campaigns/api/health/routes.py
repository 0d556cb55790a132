"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from campaigns import db, metrics
from campaigns.api.bodies import JsonRoute
from campaigns.api.metrics import CAMPAIGNS
from campaigns.campaigns import service as campaigns_service
from campaigns.errors import Unauthorized

router = APIRouter(tags=["operations"], route_class=JsonRoute)


@router.get("/healthz")
async def healthz() -> dict:
    """The process is up."""
    return {"status": "ok"}


async def _check(name: str, probe) -> tuple[str, str]:
    try:
        await asyncio.wait_for(probe(), timeout=2)
        return name, "ok"
    except Exception as exc:  # noqa: BLE001 - any failure means "not ready"
        return name, f"unavailable: {type(exc).__name__}"


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Postgres, Redis and Temporal are reachable (503 naming the ones that are not)."""
    state = request.app.state

    async def postgres() -> None:
        await db.ping(state.pool)

    async def temporal() -> None:
        await state.temporal.service_client.check_health()

    results = dict(
        await asyncio.gather(
            _check("postgres", postgres), _check("redis", state.redis.ping), _check("temporal", temporal)
        )
    )
    ready = all(v == "ok" for v in results.values())
    return JSONResponse(
        {"status": "ready" if ready else "not_ready", "checks": results}, status_code=200 if ready else 503
    )


@router.get("/metrics", include_in_schema=False)
async def prometheus(request: Request) -> Response:
    """Prometheus metrics (with `METRICS_TOKEN` set, only for `Authorization: Bearer <it>`)."""
    state = request.app.state
    token = state.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise Unauthorized("/metrics needs its token: 'Authorization: Bearer <METRICS_TOKEN>'")
    # A count over every organization: asked of Postgres at most once per interval, however
    # often (or by how many scrapers) this is read.
    counts = await state.campaign_counts.get(lambda: campaigns_service.count_by_status(pool=state.pool))
    for status in ("draft", "scheduled", "active", "paused", "ended", "archived"):
        CAMPAIGNS.labels(status).set(counts.get(status, 0))
    body, content_type = metrics.render()
    return Response(body, media_type=content_type)

"""Liveness, readiness and metrics."""

from __future__ import annotations

import asyncio
import hmac
from datetime import timedelta

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


READY_WITHIN_S = 1.5  # every check, run at once; the answer comes within this whatever is down


def _outcome(task: asyncio.Task[None], pending: set[asyncio.Task[None]]) -> str:
    if task in pending:
        return f"unavailable: no answer within {READY_WITHIN_S:g} s"
    exc = task.exception()
    return "ok" if exc is None else f"unavailable: {type(exc).__name__}"


@router.get("/readyz")
async def readyz(request: Request) -> JSONResponse:
    """Postgres, Redis and Temporal are reachable (503 naming the ones that are not)."""
    state = request.app.state

    async def postgres() -> None:
        await db.ping(state.pool, within_s=READY_WITHIN_S)  # a pooled connection included

    async def temporal() -> None:
        if not await state.temporal.service_client.check_health(timeout=timedelta(seconds=READY_WITHIN_S)):
            raise RuntimeError("not serving")

    checks = {"postgres": postgres(), "redis": state.redis.ping(), "temporal": temporal()}
    tasks = {name: asyncio.ensure_future(probe) for name, probe in checks.items()}
    _, pending = await asyncio.wait(tasks.values(), timeout=READY_WITHIN_S)
    for task in pending:
        # Not awaited: a probe stuck on a frozen peer must not hold the answer back.
        task.cancel()
    for task in tasks.values():
        task.add_done_callback(lambda t: t.cancelled() or t.exception())
    results = {name: _outcome(task, pending) for name, task in tasks.items()}
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

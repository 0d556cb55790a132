"""The FastAPI application factory: the API process's composition root.

It builds what the routes use (the pool, Redis, Temporal, the caches, the analytics
runtime) on start, keeps them on `app.state` for the dependencies in `deps`, and closes
them on stop."""

from __future__ import annotations

import asyncio
import gc
import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI
from sse_starlette.sse import AppStatus

from campaigns import db, redis_client, temporal
from campaigns.analytics.runtime import AnalyticsRuntime
from campaigns.api import errors, openapi
from campaigns.api.abtests.routes import router as abtests_router
from campaigns.api.analytics.routes import router as analytics_router
from campaigns.api.bodies import BodyLimit
from campaigns.api.campaigns.routes import router as campaigns_router
from campaigns.api.console.app import MOUNT as CONSOLE_MOUNT
from campaigns.api.console.app import create_console
from campaigns.api.embed.routes import router as embed_router
from campaigns.api.events.routes import router as events_router
from campaigns.api.health.routes import router as health_router
from campaigns.api.keys.routes import router as keys_router
from campaigns.api.metrics import MetricsMiddleware, Reused
from campaigns.api.ratelimit import RequestLimits
from campaigns.api.scheduling.routes import router as scheduling_router
from campaigns.api.webhooks.routes import router as webhooks_router
from campaigns.api.widget.routes import router as widget_router
from campaigns.auth.cache import PrincipalCache
from campaigns.campaigns.cache import CampaignCache
from campaigns.local_cache import LocalCache
from campaigns.settings import Settings, get_settings

log = logging.getLogger("campaigns.api")

DESCRIPTION = """
Voice-AI call campaigns, each run by a durable Temporal workflow.

Authenticate with an organization API key: `Authorization: Bearer qck_…`
(`campaigns keys create --org NAME` prints one). Errors are
`{"error", "code", "details"}`; bad input names each field and the reason.
"""


async def _pool_with_retry(settings: Settings):
    """Postgres may still be starting (containers start together): retry for a while."""
    delay = 0.2
    for attempt in range(40):
        try:
            return await db.create_pool(
                settings.database_dsn,
                min_size=settings.db_pool_min,
                max_size=settings.db_pool_max,
                command_timeout=settings.db_command_timeout_s,
                connect_timeout=settings.db_connect_timeout_s,
            )
        except (OSError, ConnectionError) as exc:
            if attempt == 39:
                raise
            log.warning("Postgres not reachable yet (%r); retrying", exc)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 3)
    raise AssertionError("unreachable")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        app.state.settings = settings
        app.state.campaign_counts = Reused(settings.metrics_campaigns_ttl_s)
        app.state.pool = await _pool_with_retry(settings)
        # One client, and so one breaker, for everything in this process that uses Redis.
        app.state.redis = redis_client.connect(settings, decode_responses=True)
        # Lazy: the API starts (and /readyz says why it is not ready) while Temporal is down.
        app.state.temporal = await temporal.connect(settings, lazy=True)
        local = LocalCache(app.state.redis, settings)
        app.state.campaign_cache = CampaignCache(local, app.state.redis, settings)
        app.state.principals = PrincipalCache(local, refused_ttl_s=settings.auth_negative_cache_s)
        app.state.limits = RequestLimits(app.state.redis, settings)
        await local.start()
        await app.state.limits.start()
        await app.state.campaign_cache.start(app.state.pool)
        app.state.analytics = AnalyticsRuntime(
            app.state.pool, app.state.redis, app.state.temporal, app.state.campaign_cache, settings
        )
        # Streams end when uvicorn is told to stop, so that its graceful shutdown is not held up.
        await app.state.analytics.start(should_exit=lambda: AppStatus.should_exit)
        # What is loaded by now lives as long as the process: spare it the cyclic collector's
        # full passes (on the ingest path they cost about a quarter of the CPU).
        gc.freeze()
        try:
            yield
        finally:
            await app.state.analytics.stop()
            await app.state.campaign_cache.stop()
            await app.state.limits.stop()
            await local.stop()
            await app.state.redis.aclose()
            await app.state.pool.close()

    docs = settings.api_docs
    app = FastAPI(
        title="Quantum Campaigns API",
        version="0.1.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_url="/openapi.json" if docs else None,
        docs_url="/docs" if docs else None,
        redoc_url="/redoc" if docs else None,
    )
    errors.install(app)
    body_limits = {
        "/api/events": settings.events_max_body_bytes,
        "/embed/events": settings.widget_events_max_body_bytes,
    }
    # Outside the routes, so a body too large is refused before anything reads it.
    app.add_middleware(BodyLimit, default=settings.max_body_bytes, limits=body_limits)
    app.add_middleware(MetricsMiddleware)
    app.include_router(campaigns_router)
    app.include_router(abtests_router)
    app.include_router(scheduling_router)
    app.include_router(analytics_router)
    app.include_router(events_router)
    app.include_router(widget_router)
    app.include_router(embed_router)
    app.include_router(keys_router)
    app.include_router(webhooks_router)
    app.include_router(health_router)
    openapi.install(app, body_limit=lambda path: body_limits.get(path, settings.max_body_bytes))
    # The web console: pages on the same services, under the same organization and scope checks.
    app.mount(CONSOLE_MOUNT, create_console(app))
    return app

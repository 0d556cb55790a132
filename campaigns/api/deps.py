"""Typed dependencies the routes ask for: what the app's composition root built (the pool,
Redis, Temporal, settings, the caches, the analytics runtime) and the caller.

The accessors are `async def` although they only read app state: FastAPI runs plain `def`
dependencies in a thread pool, a thread hop per dependency per request."""

from __future__ import annotations

from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from campaigns.analytics.runtime import AnalyticsRuntime
from campaigns.auth.cache import PrincipalCache
from campaigns.auth.principals import Principal, require_same_org
from campaigns.campaigns.cache import CampaignCache
from campaigns.errors import Unauthorized
from campaigns.settings import Settings


async def get_pool(request: Request) -> asyncpg.Pool:
    return request.app.state.pool


async def get_redis(request: Request) -> aioredis.Redis:
    return request.app.state.redis


async def get_temporal(request: Request) -> Client:
    return request.app.state.temporal


async def get_analytics(request: Request) -> AnalyticsRuntime:
    return request.app.state.analytics


async def get_settings(request: Request) -> Settings:
    return request.app.state.settings


async def get_campaign_cache(request: Request) -> CampaignCache:
    return request.app.state.campaign_cache


async def get_principals(request: Request) -> PrincipalCache:
    return request.app.state.principals


def client_address(request: Request) -> str:
    """Who is asking, as far as limits go (behind a proxy, `campaigns api` trusts its
    X-Forwarded-For: uvicorn's proxy headers)."""
    return request.client.host if request.client else "unknown"


_bearer = HTTPBearer(auto_error=False, description="An organization API key: `Authorization: Bearer qck_…`")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller's organization, from its API key. An `organizationId` query parameter, where
    given, must be that organization."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    state = request.app.state
    principal = await state.limits.authenticate(
        state.pool, state.principals, credentials.credentials, address=client_address(request), settings=state.settings
    )
    state.limits.check(principal, state.settings)
    claimed = request.query_params.get("organizationId")
    if claimed is not None:
        require_same_org(principal, claimed)
    request.state.principal = principal
    return principal


Db = Annotated[asyncpg.Pool, Depends(get_pool)]
Redis = Annotated[aioredis.Redis, Depends(get_redis)]
Temporal = Annotated[Client, Depends(get_temporal)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Analytics = Annotated[AnalyticsRuntime, Depends(get_analytics)]
Cache = Annotated[CampaignCache, Depends(get_campaign_cache)]
Principals = Annotated[PrincipalCache, Depends(get_principals)]
Caller = Annotated[Principal, Depends(current_principal)]

"""Typed dependencies the routes ask for: the pool, Redis, Temporal, settings and the caller.

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
from campaigns.api import ratelimit
from campaigns.api.auth.service import Principal, authenticate
from campaigns.api.errors import Forbidden, Unauthorized
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


_bearer = HTTPBearer(auto_error=False, description="An organization API key: `Authorization: Bearer qck_…`")


async def current_principal(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    """The caller's organization, from its API key. An `organizationId` query parameter, where
    given, must be that organization."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Unauthorized("missing API key: send 'Authorization: Bearer <key>'")
    principal = await authenticate(request.app.state.pool, credentials.credentials)
    if principal is None:
        raise Unauthorized("invalid or revoked API key")
    await ratelimit.check(
        request.app.state.redis, str(principal.key_id), request.app.state.settings.rate_limit_per_second
    )
    claimed = request.query_params.get("organizationId")
    if claimed is not None:
        require_same_org(principal, claimed)
    request.state.principal = principal
    return principal


def require_same_org(principal: Principal, claimed: str | None) -> None:
    if claimed is not None and claimed != str(principal.organization_id):
        raise Forbidden("organizationId does not match the organization of the API key", code="organization_mismatch")


Db = Annotated[asyncpg.Pool, Depends(get_pool)]
Redis = Annotated[aioredis.Redis, Depends(get_redis)]
Temporal = Annotated[Client, Depends(get_temporal)]
Config = Annotated[Settings, Depends(get_settings)]
Analytics = Annotated[AnalyticsRuntime, Depends(get_analytics)]
Caller = Annotated[Principal, Depends(current_principal)]

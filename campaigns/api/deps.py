"""Typed dependencies the routes ask for: what the app's composition root built (the pool,
Redis, Temporal, settings, the caches, the analytics runtime) and the caller.

The accessors are `async def` although they only read app state: FastAPI runs plain `def`
dependencies in a thread pool, a thread hop per dependency per request."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated

import asyncpg
import redis.asyncio as aioredis
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from temporalio.client import Client

from campaigns.analytics.runtime import AnalyticsRuntime
from campaigns.auth import scopes
from campaigns.auth.cache import PrincipalCache
from campaigns.auth.principals import Principal, require_same_org, require_scope
from campaigns.auth.service import hash_key, until_revoked
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
    request.state.key_hash = hash_key(credentials.credentials)
    claimed = request.query_params.get("organizationId")
    if claimed is not None:
        require_same_org(principal, claimed)
    request.state.principal = principal
    return principal


def requiring(*any_of: str) -> Callable[..., Awaitable[Principal]]:
    """A dependency: the caller, if its key has one of these scopes (else 403
    `insufficient_scope` naming them). Routes take it through the aliases below."""

    async def authorized(principal: Annotated[Principal, Depends(current_principal)]) -> Principal:
        require_scope(principal, *any_of)
        return principal

    authorized.required_scopes = any_of  # type: ignore[attr-defined]  # read by the OpenAPI document and tests
    return authorized


async def revocation(
    request: Request, _: Annotated[Principal, Depends(current_principal)]
) -> Callable[[], Awaitable[None]]:
    """What a long response (a stream, an export) awaits to end when the caller's key is revoked."""
    state = request.app.state
    return functools.partial(
        until_revoked, pool=state.pool, principals=state.principals, key_hash=request.state.key_hash
    )


Db = Annotated[asyncpg.Pool, Depends(get_pool)]
Redis = Annotated[aioredis.Redis, Depends(get_redis)]
Temporal = Annotated[Client, Depends(get_temporal)]
AppSettings = Annotated[Settings, Depends(get_settings)]
Analytics = Annotated[AnalyticsRuntime, Depends(get_analytics)]
Cache = Annotated[CampaignCache, Depends(get_campaign_cache)]
Principals = Annotated[PrincipalCache, Depends(get_principals)]
# Authenticated, whatever its scopes: for dependencies that routes with a scope build on.
Caller = Annotated[Principal, Depends(current_principal)]
# Every /api route takes the caller through one of these (a test walks the routes).
Reader = Annotated[Principal, Depends(requiring(scopes.CAMPAIGNS_READ))]
Writer = Annotated[Principal, Depends(requiring(scopes.CAMPAIGNS_WRITE))]
EventWriter = Annotated[Principal, Depends(requiring(scopes.EVENTS_WRITE))]
# What the voice pipeline asks while it dials (A/B assignment, dial checks).
PipelineCaller = Annotated[Principal, Depends(requiring(scopes.EVENTS_WRITE, scopes.CAMPAIGNS_READ))]
AnalyticsReader = Annotated[Principal, Depends(requiring(scopes.ANALYTICS_READ))]
WebhookWriter = Annotated[Principal, Depends(requiring(scopes.WEBHOOKS_WRITE))]
WebhookReader = Annotated[Principal, Depends(requiring(scopes.WEBHOOKS_WRITE, scopes.CAMPAIGNS_READ))]
Admin = Annotated[Principal, Depends(requiring(scopes.ADMIN))]
Revocation = Annotated[Callable[[], Awaitable[None]], Depends(revocation)]

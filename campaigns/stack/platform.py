"""`campaigns run`: the whole platform on one machine, as supervised child processes.

Embedded pieces start only where no external URL is configured. Order: Postgres,
Redis, Temporal (with the Web UI), migrations, the worker, the API. Ctrl-C stops them
in reverse order.
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import sys

import httpx

from campaigns import db
from campaigns.auth import service as auth
from campaigns.settings import Settings
from campaigns.stack import services
from campaigns.stack.supervisor import Supervisor

log = logging.getLogger("campaigns.stack")


def _port_free(port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def _require_port(port: int, what: str, env: str) -> None:
    if not _port_free(port):
        raise SystemExit(
            f"port {port} for {what} is already in use: stop whatever holds it, or set {env} "
            "to another port (or to an external service's URL)"
        )


async def start_infrastructure(sup: Supervisor, settings: Settings) -> None:
    data = settings.data_dir
    data.mkdir(parents=True, exist_ok=True)
    if not settings.database_url:
        _require_port(settings.postgres_port, "PostgreSQL", "POSTGRES_PORT")
        spec, _ = services.postgres(data, settings.postgres_port)
        await sup.start(spec)
    if not settings.redis_url:
        _require_port(settings.redis_port, "Redis", "REDIS_PORT")
        spec, _ = services.redis(data, settings.redis_port)
        await sup.start(spec)
    if not settings.temporal_address:
        _require_port(settings.temporal_port, "Temporal", "TEMPORAL_PORT")
        _require_port(settings.temporal_ui_port, "the Temporal Web UI", "TEMPORAL_UI_PORT")
        spec, _ = services.temporal(
            data, settings.temporal_port, settings.temporal_ui_port, namespace=settings.temporal_namespace
        )
        await sup.start(spec)


async def demo_key(settings: Settings) -> str:
    """The demo organization's key, made once and kept in the data directory."""
    path = settings.data_dir / "demo-api-key"
    pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=2)
    try:
        if path.exists():
            key = path.read_text().strip()
            if await auth.authenticate(pool, None, key):
                return key
        key, _ = await auth.create_key(pool, organization=settings.demo_organization, name="demo")
        path.write_text(key + "\n")
        path.chmod(0o600)
        return key
    finally:
        await pool.close()


def _python_child(name: str, *args: str, probe=None) -> services.ServiceSpec:
    return services.ServiceSpec(name=name, argv=[sys.executable, "-m", "campaigns.cli", *args], probe=probe)


def _use_simulator(settings: Settings) -> Settings:
    """Point the pipeline and knowledge-base URLs (left unset) at the simulator, for this
    process and the children it starts."""
    url = f"http://127.0.0.1:{settings.simulator_port}"
    updates = {}
    for field, env in (("pipeline_url", "PIPELINE_URL"), ("knowledge_base_url", "KNOWLEDGE_BASE_URL")):
        if not getattr(settings, field):
            updates[field] = url
            os.environ[env] = url
    return settings.model_copy(update=updates)


async def run(settings: Settings, *, simulate: bool = False) -> None:
    sup = Supervisor()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await start_infrastructure(sup, settings)
        applied = await db.migrate(settings.database_dsn)
        if applied:
            log.info("applied migrations: %s", ", ".join(applied))
        if simulate:
            _require_port(settings.simulator_port, "the simulator", "SIMULATOR_PORT")
            settings = _use_simulator(settings)

            async def simulator_ready() -> None:
                async with httpx.AsyncClient(timeout=2) as client:
                    (await client.get(f"http://127.0.0.1:{settings.simulator_port}/healthz")).raise_for_status()

            # Started first, so the worker and API find the pipeline and knowledge bases up.
            await sup.start(
                _python_child(
                    "simulator",
                    "simulate",
                    "--demo-key-file",
                    str(settings.data_dir / "demo-api-key"),
                    "--progress-lines",
                    probe=simulator_ready,
                )
            )
        key = await demo_key(settings)

        await sup.start(_python_child("worker", "worker"))

        async def api_ready() -> None:
            async with httpx.AsyncClient(timeout=2) as client:
                (await client.get(f"{settings.base_url}/healthz")).raise_for_status()

        if not _port_free(settings.api_port):
            raise SystemExit(f"port {settings.api_port} for the API is in use; set API_PORT")
        await sup.start(_python_child("api", "api", probe=api_ready))
        _banner(settings, key, simulate=simulate)
        waiter = asyncio.create_task(sup.wait())
        await asyncio.wait([waiter, asyncio.create_task(stop.wait())], return_when=asyncio.FIRST_COMPLETED)
    finally:
        print("\nstopping…", file=sys.stderr)
        await sup.stop()


def _banner(settings: Settings, key: str, *, simulate: bool = False) -> None:
    ui = f"http://127.0.0.1:{settings.temporal_ui_port}" if not settings.temporal_address else "(external Temporal)"
    simulator = (
        f"\n  Simulator      http://127.0.0.1:{settings.simulator_port} (pipeline and knowledge bases; live traffic"
        f"\n                for active campaigns, {settings.simulator_rate:g} calls/s: watch "
        f"/api/campaigns/{{id}}/analytics/real-time)"
        if simulate
        else ""
    )
    print(
        f"""
Quantum Campaigns is running.

  Console        {settings.base_url}/console  (sign in with the API key below)
  API            {settings.base_url}
  OpenAPI docs   {settings.base_url}/docs
  Temporal UI    {ui}
  Data           {settings.data_dir.resolve()}{simulator}

  Demo organization '{settings.demo_organization}', API key:
  {key}

  Try:  curl -s -H "Authorization: Bearer {key}" {settings.base_url}/api/campaigns

Press Ctrl-C to stop.
""",
        flush=True,
    )

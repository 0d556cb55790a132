"""`campaigns simulate`: the stand-in pipeline and knowledge-base services, and live
traffic for every active campaign whose calling window is open.

The stand-ins listen on SIMULATOR_PORT (point PIPELINE_URL and KNOWLEDGE_BASE_URL at it;
`campaigns run --simulate` does). Callers of a campaign with a running A/B test are
assigned to its variants as the pipeline would. The traffic is recorded through the same ingestion
service as `POST /api/events`, so every number on the analytics endpoints moves as it
would with a real pipeline. With `--demo-key-file`, the demo organization gets an active demo
campaign when it has none, so there is something to watch at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import sys
import time
from pathlib import Path

import httpx
import uvicorn

from campaigns import db
from campaigns.settings import Settings
from campaigns.simulator import assign, repository
from campaigns.simulator.progress import Progress
from campaigns.simulator.sink import EventSink
from campaigns.simulator.standins import StandInState, create_app
from campaigns.simulator.traffic import SimCampaign, Traffic

log = logging.getLogger("campaigns.simulator")

TICK_S = 0.5
REFRESH_S = 5.0

DEMO_CAMPAIGN = {
    "name": "Demo: help line and website assistant",
    "description": "Made by `campaigns simulate --demo-key-file` so there is live traffic to watch.",
    "type": "hybrid",
    "channel": "multi",
    "flowId": "demo-flow",
    "knowledgeBaseIds": ["kb-faq", "kb-product-catalog"],
    "voiceSettings": {"speakingStyle": "friendly"},
    "budget": {"daily": 500, "currency": "USD"},
    "goals": [{"type": "leads", "target": 200, "timeframe": "daily"}],
}


async def serve_standins(settings: Settings, port: int) -> tuple[uvicorn.Server, asyncio.Task[None]]:
    state = StandInState(store=settings.data_dir / "simulator" / "knowledge-bases.json")
    server = uvicorn.Server(uvicorn.Config(create_app(state), host="127.0.0.1", port=port, log_level="warning"))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()  # the port is taken, say
            raise SystemExit(f"the simulator could not listen on port {port}")
        await asyncio.sleep(0.05)
    return server, task


async def ensure_demo_campaign(settings: Settings, key: str) -> None:
    """Give the demo organization an active campaign if it has none (through the API, so the
    workflow runs it and the pipeline is told)."""
    headers = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=settings.base_url, headers=headers, timeout=30) as api:
        for _ in range(120):  # the API may still be starting
            with contextlib.suppress(httpx.HTTPError):
                if (await api.get("/healthz")).status_code == 200:
                    break
            await asyncio.sleep(0.5)
        active = await api.get("/api/campaigns", params={"status": "active", "limit": 1})
        if active.status_code == 200 and active.json()["total"] > 0:
            return
        created = await api.post("/api/campaigns", json=DEMO_CAMPAIGN, headers={"Idempotency-Key": "simulator-demo"})
        if created.status_code not in (200, 201):
            log.warning("could not create the demo campaign: %s", created.text[:300])
            return
        campaign = created.json()["campaign"]
        if campaign["status"] != "active":
            r = await api.post(f"/api/campaigns/{campaign['id']}/activate")
            if r.status_code not in (200, 202):  # 202: accepted, its workflow applies it shortly
                log.warning("could not activate the demo campaign: %s", r.text[:300])
                return
        log.info("demo campaign %s is active", campaign["id"])


async def generate(settings: Settings, traffic: Traffic, progress: Progress, stop: asyncio.Event) -> None:
    """Plan and send events until `stop`: every tick, the calls that arrive and the events due."""
    pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=4)
    sink = await EventSink.open(pool, settings)
    campaigns: list[SimCampaign] = []
    refreshed = 0.0
    last = time.monotonic()
    try:
        while not stop.is_set():
            now = time.monotonic()
            if now - refreshed >= REFRESH_S:
                campaigns = await repository.taking_calls(pool)
                refreshed = now
            arrivals = traffic.arrivals(campaigns, now, now - last)
            for arrival, variant in zip(arrivals, await assign.variants(pool, arrivals), strict=True):
                traffic.place(arrival, variant)
            last = now
            due = traffic.due(now)
            if due:
                rejected = await sink.send(due)
                traffic.totals.events_sent += len(due) - rejected
                traffic.totals.events_rejected += rejected
            progress.show(traffic.totals, campaigns=len(campaigns), pending=traffic.pending)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), TICK_S)
    finally:
        progress.done(traffic.totals, campaigns=len(campaigns))
        await sink.close()
        await pool.close()


async def run(
    settings: Settings,
    *,
    rate: float,
    time_scale: float,
    port: int,
    traffic: bool = True,
    demo_key_file: Path | None = None,
    seed: int | None = None,
    progress_lines: bool | None = None,
) -> None:
    stop = asyncio.Event()
    demo: asyncio.Task[None] | None = None
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    server, serving = await serve_standins(settings, port)
    print(f"simulator: pipeline and knowledge-base stand-ins on http://127.0.0.1:{port}", file=sys.stderr, flush=True)
    try:
        if not traffic:
            await stop.wait()
            return
        demo = asyncio.create_task(_demo(settings, demo_key_file)) if demo_key_file is not None else None
        lines = progress_lines if progress_lines is not None else not sys.stderr.isatty()
        await generate(
            settings, Traffic(rate=rate, time_scale=time_scale, seed=seed), Progress(rate, lines=lines), stop
        )
    finally:
        if traffic and demo is not None:
            demo.cancel()
        server.should_exit = True
        await serving


async def _demo(settings: Settings, key_file: Path) -> None:
    for _ in range(240):  # `campaigns run` writes the key once the database is up
        if key_file.exists():  # noqa: ASYNC240 - a tiny local file
            await ensure_demo_campaign(settings, key_file.read_text().strip())  # noqa: ASYNC240
            return
        await asyncio.sleep(0.5)
    log.warning("no demo API key in %s: no demo campaign", key_file)

"""`campaigns`: the one command-line entry point.

campaigns run                      the whole platform (what `make run` calls)
campaigns api                      the HTTP API alone
campaigns worker                   a Temporal worker alone
campaigns migrate                  apply database migrations
campaigns keys create --org NAME   a new API key (the organization is created if needed; --scope S, default admin)
campaigns rebuild-analytics        recompute rollups, summaries and real-time counters from the events
campaigns simulate                 stand-in pipeline and knowledge bases, and live traffic
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import uuid

from campaigns.auth import scopes
from campaigns.settings import get_settings


def _logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(), format="%(asctime)s %(levelname)-7s %(name)s: %(message)s", stream=sys.stderr
    )


def cmd_run(args: argparse.Namespace) -> None:
    from campaigns.stack import platform

    asyncio.run(platform.run(get_settings(), simulate=args.simulate))


def cmd_simulate(args: argparse.Namespace) -> None:
    from pathlib import Path

    from campaigns.simulator import run

    settings = get_settings()
    asyncio.run(
        run.run(
            settings,
            rate=args.rate if args.rate is not None else settings.simulator_rate,
            time_scale=args.time_scale,
            port=args.port or settings.simulator_port,
            traffic=not args.no_traffic,
            demo_key_file=Path(args.demo_key_file) if args.demo_key_file else None,
            seed=args.seed,
            progress_lines=True if args.progress_lines else None,
        )
    )


def cmd_api(args: argparse.Namespace) -> None:
    import uvicorn

    settings = get_settings()
    uvicorn.run(
        "campaigns.api.app:create_app",
        factory=True,
        host=args.host or settings.api_host,
        port=args.port or settings.api_port,
        workers=args.workers,
        log_level=settings.log_level,
        proxy_headers=True,
    )


def cmd_worker(args: argparse.Namespace) -> None:
    from campaigns import worker

    asyncio.run(worker.run(get_settings()))


def cmd_migrate(args: argparse.Namespace) -> None:
    from campaigns import db
    from campaigns.webhooks.service import seal_stored_credentials

    async def go() -> tuple[list[str], int]:
        settings = get_settings()
        applied = await db.migrate(settings.database_dsn)
        pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=2)
        try:
            return applied, await seal_stored_credentials(pool=pool, settings=settings)
        finally:
            await pool.close()

    applied, sealed = asyncio.run(go())
    print("applied: " + (", ".join(applied) if applied else "nothing (up to date)"))
    if sealed:
        print(f"encrypted the URL and headers of {sealed} webhook endpoint(s) stored in clear")


def cmd_keys_create(args: argparse.Namespace) -> None:
    from campaigns import db
    from campaigns.auth.service import create_key

    async def go() -> str:
        settings = get_settings()
        await db.migrate(settings.database_dsn)
        pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=2)
        try:
            key, record = await create_key(
                pool, organization=args.org, name=args.name, scopes=args.scope or [scopes.ADMIN]
            )
        finally:
            await pool.close()
        print(
            f"organization {args.org!r} ({record['organization_id']}), key {args.name!r} ({record['id']}), "
            f"scopes {', '.join(record['scopes'])}:"
        )
        return key

    key = asyncio.run(go())
    print(key)  # alone on the last line, for scripts


def cmd_rebuild_analytics(args: argparse.Namespace) -> None:
    from campaigns import db, redis_client
    from campaigns.analytics.realtime import Realtime
    from campaigns.analytics.rebuild import rebuild
    from campaigns.campaigns.cache import CampaignCache
    from campaigns.local_cache import LocalCache

    async def go():
        settings = get_settings()
        await db.migrate(settings.database_dsn)
        pool = await db.create_pool(settings.database_dsn, min_size=1, max_size=2)
        redis = redis_client.connect(settings)
        cache = CampaignCache(LocalCache(redis, settings), redis, settings)  # to invalidate what is rebuilt
        try:
            return await rebuild(
                pool, Realtime(redis), cache, campaign_ids=args.campaign or None, redis_only=args.redis_only
            )
        finally:
            await redis.aclose()
            await pool.close()

    report = asyncio.run(go())
    scope = f"{report.campaigns} campaign(s)" if report.campaigns is not None else "all campaigns"
    rollups = "kept" if report.rollup_rows is None else f"{report.rollup_rows} rows rebuilt"
    print(
        f"rebuilt analytics of {scope}: {report.drained_batches} pending batches applied, rollups {rollups}, "
        f"{report.redis_buckets} real-time slots and {report.calls} recent calls reloaded"
    )


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="campaigns", description="Quantum Campaigns")
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="start the whole platform")
    run.add_argument(
        "--simulate",
        action="store_true",
        help="also run the simulator: stand-in pipeline, a demo campaign and live traffic",
    )
    run.set_defaults(fn=cmd_run)

    api = sub.add_parser("api", help="run the HTTP API")
    api.add_argument("--host")
    api.add_argument("--port", type=int)
    api.add_argument("--workers", type=int, default=1)
    api.set_defaults(fn=cmd_api)

    sub.add_parser("worker", help="run a Temporal worker").set_defaults(fn=cmd_worker)
    sub.add_parser("migrate", help="apply database migrations").set_defaults(fn=cmd_migrate)

    rebuild = sub.add_parser(
        "rebuild-analytics",
        help="recompute rollups, the performance summary, goal progress and real-time counters from the events",
    )
    rebuild.add_argument("--campaign", action="append", type=uuid.UUID, help="only this campaign (repeatable)")
    rebuild.add_argument(
        "--redis-only", action="store_true", help="only the real-time counters (after Redis lost data)"
    )
    rebuild.set_defaults(fn=cmd_rebuild_analytics)
    sim = sub.add_parser("simulate", help="stand-in pipeline and knowledge-base services, and live call traffic")
    sim.add_argument("--rate", type=float, help="calls a second over all campaigns (default SIMULATOR_RATE)")
    sim.add_argument("--time-scale", type=float, default=10.0, help="calls last this many times shorter (default 10)")
    sim.add_argument("--port", type=int, help="port of the stand-ins (default SIMULATOR_PORT)")
    sim.add_argument("--no-traffic", action="store_true", help="only serve the stand-in services")
    sim.add_argument("--demo-key-file", help="an API key file: make an active demo campaign if there is none")
    sim.add_argument("--seed", type=int, help="seed the randomness, to replay a run")
    sim.add_argument("--progress-lines", action="store_true", help="a progress line every 10 s, not redrawn")
    sim.set_defaults(fn=cmd_simulate)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(dest="keys_command", required=True)
    create = keys.add_parser("create", help="create an API key; prints it alone on the last line")
    create.add_argument("--org", required=True, help="organization name (created if needed)")
    create.add_argument("--name", default="default", help="a label for the key")
    create.add_argument(
        "--scope",
        action="append",
        choices=scopes.ALL,
        help="what the key may do (repeatable; default admin)",
    )
    create.set_defaults(fn=cmd_keys_create)
    return p


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    _logging(get_settings().log_level)
    args.fn(args)


if __name__ == "__main__":
    main()

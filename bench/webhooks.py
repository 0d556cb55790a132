"""Webhook fan-out benchmark: events fanned out to 50 endpoints on a local receiver.

Starts its own Postgres, Redis and Temporal dev server (SQLite file by default, as
`campaigns run` does; `--temporal memory` for an in-memory server), one worker process
(`campaigns worker`, which also runs the dispatcher), and a receiver in this process.
Events are recorded straight into Postgres the way the API and workflows record them;
each is delivered to every endpoint by its own delivery workflow.

Two phases, each printed:
  burst   all events at once: deliveries per second, first event to last receipt;
  paced   events at --rate per second: event-to-receipt latency p50 / p99 / max.
Targets: p50 < 100 ms, p99 < 500 ms, at least 200 deliveries/s.

    .venv/bin/python bench/webhooks.py [--endpoints 50] [--events 40] [--rate 4] [--temporal sqlite|memory]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import uvicorn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from campaigns import db  # noqa: E402
from campaigns.api.auth.service import create_key  # noqa: E402
from campaigns.api.campaigns import repository as campaigns_repo  # noqa: E402
from campaigns.api.webhooks import repository as webhooks_repo  # noqa: E402
from campaigns.settings import Settings  # noqa: E402
from campaigns.stack import services  # noqa: E402
from campaigns.stack.supervisor import Supervisor  # noqa: E402
from campaigns.webhooks import secrets  # noqa: E402


class Receiver:
    """Notes when each (event, endpoint) arrives; answers 200 at once."""

    def __init__(self) -> None:
        self.arrivals: dict[tuple[str, str], float] = {}
        self.duplicates = 0
        self.changed = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        now = time.time()
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = dict(scope["headers"])
        key = (headers.get(b"webhook-id", b"").decode(), scope["path"])
        if key in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[key] = now
        self.changed.set()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--events", type=int, default=40, help="events per phase")
    parser.add_argument("--rate", type=float, default=4.0, help="events per second in the paced phase")
    parser.add_argument("--temporal", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="bench-webhooks-"))
    sup = Supervisor(restart=False)
    try:
        spec, pg_url = services.postgres(data_dir, services.free_port())
        await sup.start(spec)
        spec, redis_url = services.redis(data_dir, services.free_port(), persist=False)
        await sup.start(spec)
        spec, temporal_address = services.temporal(
            data_dir if args.temporal == "sqlite" else None, services.free_port(), None, log_dir=data_dir
        )
        await sup.start(spec)
        await db.migrate(pg_url)

        env = {
            "DATABASE_URL": pg_url, "REDIS_URL": redis_url, "TEMPORAL_ADDRESS": temporal_address,
            "TEMPORAL_TASK_QUEUE": "bench", "DATA_DIR": str(data_dir), "WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8",
            "LOG_LEVEL": "warning",
        }
        settings = Settings(_env_file=None, database_url=pg_url, data_dir=data_dir)
        pool = await db.create_pool(pg_url, min_size=2, max_size=10)

        # The receiver, in this process.
        receiver = Receiver()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(receiver, log_level="warning", lifespan="off", access_log=False))
        server_task = asyncio.create_task(server.serve(sockets=[sock]))

        # An organization, a campaign and its endpoints.
        _, key = await create_key(pool, organization="bench")
        org = key["organization_id"]
        campaign = uuid.uuid4()
        await campaigns_repo.insert(
            pool, campaign_id=campaign, organization_id=org, user_id="bench", name="bench", description=None,
            type_="outbound", channel="phone", timezone="UTC", config={},
        )
        for i in range(args.endpoints):
            await webhooks_repo.insert_endpoint(
                pool, endpoint_id=uuid.uuid4(), organization_id=org, campaign_id=campaign, kind="webhook",
                url=f"http://127.0.0.1:{port}/hook/{i}", event_types=["lead.*"],
                secret=secrets.encrypt(settings, secrets.new_secret()), max_concurrency=50,
            )

        worker = services.ServiceSpec(
            name="worker", argv=[sys.executable, "-m", "campaigns.cli", "worker"], env=env,
            log_file=data_dir / "logs" / "worker.log",
        )
        await sup.start(worker)
        await asyncio.sleep(3)  # let it connect and poll

        async def record(n: int) -> float:
            async with pool.acquire() as conn, conn.transaction():
                await campaigns_repo.record_event(
                    conn, event_id=uuid.uuid4(), organization_id=org, campaign_id=campaign, type_="lead.created",
                    data={"leadId": f"lead-{n}", "score": 80}, occurred_at=datetime.now(UTC),
                )
            return time.time()

        async def wait_all(expected: int, timeout: float) -> None:
            deadline = time.time() + timeout
            while len(receiver.arrivals) < expected and time.time() < deadline:
                receiver.changed.clear()
                try:
                    await asyncio.wait_for(receiver.changed.wait(), 1)
                except TimeoutError:
                    pass

        # Warm-up: a few deliveries so connections and caches exist.
        await record(-1)
        await wait_all(args.endpoints, 60)
        base = len(receiver.arrivals)

        # Burst.
        start = time.time()
        await asyncio.gather(*(record(i) for i in range(args.events)))
        expected = base + args.events * args.endpoints
        await wait_all(expected, 600)
        burst_n = len(receiver.arrivals) - base
        burst_end = max(receiver.arrivals.values())
        burst_rate = burst_n / (burst_end - start)

        # Paced: latency from the commit of each event to each receipt.
        await asyncio.sleep(2)
        before = set(receiver.arrivals)
        interval = 1 / args.rate
        paced_start = time.time()
        for i in range(args.events):
            target = paced_start + i * interval
            await asyncio.sleep(max(0, target - time.time()))
            await record(10_000 + i)
        expected = len(before) + args.events * args.endpoints
        await wait_all(expected, 600)
        new = [(k, t) for k, t in receiver.arrivals.items() if k not in before]
        # Each receipt is matched to its event through the delivery's row (webhook-id → event).
        rows = await pool.fetch(
            "SELECT d.id, e.recorded_at FROM webhook_deliveries d JOIN domain_events e ON e.id = d.event_id"
        )
        recorded = {"msg_" + r["id"].hex: r["recorded_at"].timestamp() for r in rows}
        lat = [(t - recorded[k[0]]) * 1000 for k, t in new if k[0] in recorded]
        paced_rate = len(new) / (max(t for _, t in new) - paced_start)

        print(f"\nwebhook fan-out: {args.endpoints} endpoints, {args.events} events per phase, "
              f"Temporal dev server on {args.temporal}, {os.cpu_count()} cores")
        print(f"  burst   {burst_n} deliveries in {burst_end - start:.2f}s: {burst_rate:.0f} deliveries/s "
              f"(target ≥ 200)")
        print(f"  paced   {args.rate:g} events/s = {args.rate * args.endpoints:.0f} deliveries/s offered, "
              f"{paced_rate:.0f}/s delivered")
        print(f"          event-to-receipt latency p50 {statistics.median(lat):.0f} ms, "
              f"p99 {percentile(lat, 0.99):.0f} ms, max {max(lat):.0f} ms (targets p50 < 100, p99 < 500)")
        print(f"  duplicates received: {receiver.duplicates}; missing: {expected - len(receiver.arrivals)}")

        server.should_exit = True
        await server_task
        await pool.close()
    finally:
        await sup.stop()


if __name__ == "__main__":
    asyncio.run(main())

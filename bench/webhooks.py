"""Webhook fan-out: events fanned out to 50 endpoints on one local receiver.

The embedded stack (Temporal on SQLite, as `make run`; `--temporal memory` for an in-memory
server) with one worker process, which also runs the dispatcher; the receiver runs here.
Events are recorded straight into `platform_events`, as the API and the workflows record them;
each reaches each endpoint through its own delivery workflow.

Printed:
  burst   all events at once: deliveries per second, first event to last receipt;
  paced   events at --rate per second (default: half the burst's throughput, so latency is
          measured below saturation): event-to-receipt latency p50 / p99 / max, from the
          commit of the event to the arrival of each request at the receiver;
  floor   on the same server, workflows that do nothing but one local activity: the most
          that one workflow per delivery can reach here, whatever the delivery does;
  direct  the attempt activity called without Temporal (read, sign, send, record): what the
          rest of the delivery path costs.
Targets: p50 < 100 ms, p99 < 500 ms, at least 200 deliveries/s.

    .venv/bin/python -m bench.webhooks [--endpoints 50] [--events 40] [--rate R] [--temporal sqlite|memory]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import psutil
import uvicorn
from temporalio import activity, workflow
from temporalio.worker import Worker

from bench.stack import embedded_stack, percentile
from campaigns import db, temporal
from campaigns.activities.webhooks import WebhookActivities
from campaigns.auth.service import create_key
from campaigns.campaigns import repository as campaigns_repo
from campaigns.webhooks import repository as webhooks_repo
from campaigns.messages.webhook_delivery import AttemptRequest
from campaigns.webhooks import secrets


class Receiver:
    """Notes when each delivery first arrives; answers 200 at once."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.duplicates = 0
        self.changed = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        now = time.time()
        while (await receive()).get("more_body"):
            pass
        msg_id = dict(scope["headers"]).get(b"webhook-id", b"").decode()
        if msg_id in self.arrivals:
            self.duplicates += 1
        else:
            self.arrivals[msg_id] = now
        self.changed.set()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def wait_for(self, count: int, timeout: float) -> None:
        deadline = time.time() + timeout
        while len(self.arrivals) < count and time.time() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1)
            except TimeoutError:
                pass


FLOOR_DONE = 0


@activity.defn
async def floor_step() -> None:
    global FLOOR_DONE
    FLOOR_DONE += 1


@workflow.defn(sandboxed=False)
class Floor:
    @workflow.run
    async def run(self) -> None:
        await workflow.execute_local_activity(floor_step, start_to_close_timeout=timedelta(seconds=30))


async def floor_rate(settings, n: int, temporal_pid: int) -> tuple[float, float, float]:
    """Workflows per second, start to completion, when each is one local activity; and the
    server's and this process's (starter and worker) CPU milliseconds per workflow."""
    client = await temporal.connect(settings)
    gate = asyncio.Semaphore(64)

    async def start(i: int) -> None:
        async with gate:
            await client.start_workflow(Floor.run, id=f"floor-{uuid.uuid4()}", task_queue="floor")

    async with Worker(client, task_queue="floor", workflows=[Floor], activities=[floor_step]):
        who = {"t": temporal_pid, "w": os.getpid()}
        cpu0 = cpu_seconds(who)
        t0 = time.time()
        await asyncio.gather(*(start(i) for i in range(n)))
        while FLOOR_DONE < n:
            await asyncio.sleep(0.02)
        elapsed = time.time() - t0
        cpu1 = cpu_seconds(who)
        return n / elapsed, (cpu1["t"] - cpu0["t"]) * 1000 / n, (cpu1["w"] - cpu0["w"]) * 1000 / n


async def direct_rate(settings, pool, org, port: int, n: int) -> float:
    """Attempts per second when the activity is called directly, 50 at a time."""
    import redis.asyncio as aioredis

    endpoint = uuid.uuid4()
    await webhooks_repo.insert_endpoint(
        pool, endpoint_id=endpoint, organization_id=org, campaign_id=None, kind="webhook",
        url=f"http://127.0.0.1:{port}/direct", event_types=["*"],
        secret=secrets.encrypt(settings, secrets.new_secret()), max_concurrency=100,
    )
    ids = [uuid.uuid4() for _ in range(n)]
    for delivery in ids:
        await webhooks_repo.insert_delivery(pool, delivery_id=delivery, endpoint_id=endpoint, organization_id=org,
                                            event_type="lead.created", campaign_id=None, body='{"type":"lead.created"}')
    redis = aioredis.from_url(settings.redis_dsn)
    activities = WebhookActivities(pool, settings.model_copy(update={"webhook_allowed_networks": "127.0.0.0/8"}), redis)
    gate = asyncio.Semaphore(50)

    async def one(delivery: uuid.UUID) -> None:
        async with gate:
            await activities.attempt_delivery(AttemptRequest(delivery_id=str(delivery), run=0, attempt=1))

    t0 = time.time()
    await asyncio.gather(*(one(d) for d in ids))
    elapsed = time.time() - t0
    await activities.aclose()
    await redis.aclose()
    return n / elapsed


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """CPU time used so far by each named process and its children (Postgres backends)."""
    out = {}
    for name, pid in pids.items():
        try:
            proc = psutil.Process(pid)
            total = 0.0
            family = [proc] if pid == os.getpid() else [proc, *proc.children(recursive=True)]
            for p in family:
                t = p.cpu_times()
                total += t.user + t.system
            out[name] = total
        except psutil.Error:
            out[name] = float("nan")
    return out


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--events", type=int, default=40, help="events in each phase")
    parser.add_argument("--rate", type=float, default=None,
                        help="events per second in the paced phase (default: half the burst throughput)")
    parser.add_argument("--temporal", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args()

    async with embedded_stack(temporal_in_memory=args.temporal == "memory") as stack:
        settings = stack.settings
        stack.env.update({"WEBHOOK_ALLOWED_NETWORKS": "127.0.0.0/8", "TEMPORAL_TASK_QUEUE": "bench"})
        pool = await db.create_pool(settings.database_dsn, min_size=2, max_size=10)

        receiver = Receiver()
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        server = uvicorn.Server(uvicorn.Config(receiver, log_level="warning", lifespan="off", access_log=False))
        server_task = asyncio.create_task(server.serve(sockets=[sock]))

        _, key = await create_key(pool, organization="bench")
        org, campaign = key["organization_id"], uuid.uuid4()
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
        await stack.start_worker()

        async def record(n: int) -> None:
            async with pool.acquire() as conn, conn.transaction():
                await campaigns_repo.record_platform_event(
                    conn, event_id=uuid.uuid4(), organization_id=org, campaign_id=campaign, type_="lead.created",
                    data={"leadId": f"lead-{n}", "score": 80}, occurred_at=datetime.now(UTC),
                )

        # Warm-up: connections, caches, the worker's first polls.
        await record(-1)
        await receiver.wait_for(args.endpoints, 120)

        pids = {c.spec.name: c.process.pid for c in stack.supervisor.children if c.process}
        pids["bench (receiver)"] = os.getpid()

        # Burst.
        cpu_before = cpu_seconds(pids)

        base = len(receiver.arrivals)
        start = time.time()
        await asyncio.gather(*(record(i) for i in range(args.events)))
        await receiver.wait_for(base + args.events * args.endpoints, 900)
        burst_n = len(receiver.arrivals) - base
        burst_s = max(receiver.arrivals.values()) - start
        cpu_after = cpu_seconds(pids)
        cpu_per_delivery = {k: (cpu_after[k] - cpu_before[k]) * 1000 / burst_n for k in pids}

        # Paced.
        rate = args.rate or max(0.05, burst_n / burst_s / args.endpoints / 2)
        await asyncio.sleep(2)
        before = set(receiver.arrivals)
        paced_start = time.time()
        for i in range(args.events):
            await asyncio.sleep(max(0.0, paced_start + i / rate - time.time()))
            await record(10_000 + i)
        expected = len(before) + args.events * args.endpoints
        await receiver.wait_for(expected, 900)
        recorded = {
            "msg_" + r["id"].hex: r["recorded_at"].timestamp()
            for r in await pool.fetch(
                "SELECT d.id, e.recorded_at FROM webhook_deliveries d JOIN platform_events e ON e.id = d.event_id"
            )
        }
        new = {k: t for k, t in receiver.arrivals.items() if k not in before}
        lat = [(t - recorded[k]) * 1000 for k, t in new.items() if k in recorded]
        paced_rate = len(new) / (max(new.values()) - paced_start)
        missing = expected - len(receiver.arrivals)

        direct = await direct_rate(settings, pool, org, port, 1000)
        server.should_exit = True
        await server_task
        await pool.close()
        floor, floor_cpu, floor_worker_cpu = await floor_rate(settings, min(1000, args.events * args.endpoints), pids["temporal"])

    print(f"\nwebhook fan-out — {args.endpoints} endpoints, {args.events} events a phase, Temporal dev server "
          f"on {args.temporal}, {os.cpu_count()} cores")
    print(f"  burst  {burst_n} deliveries in {burst_s:.1f} s: {burst_n / burst_s:.0f} deliveries/s  (target ≥ 200)")
    print(f"  paced  {rate:.2g} events/s ({rate * args.endpoints:.0f} deliveries/s offered, "
          f"{paced_rate:.0f}/s delivered): event-to-receipt p50 {statistics.median(lat):.0f} ms, "
          f"p99 {percentile(lat, 99):.0f} ms, max {max(lat):.0f} ms  (targets p50 < 100, p99 < 500)")
    print("  CPU per delivery (burst): " + ", ".join(f"{k} {v:.1f} ms" for k, v in cpu_per_delivery.items()))
    print(f"  floor  one-local-activity workflows on the same server: {floor:.0f}/s "
          f"(CPU each: temporal {floor_cpu:.1f} ms, starter + worker {floor_worker_cpu:.1f} ms)")
    print(f"  direct the attempt path without Temporal (receiver in this process): {direct:.0f} attempts/s")
    print(f"  received twice: {receiver.duplicates}; never received: {missing}")


if __name__ == "__main__":
    asyncio.run(main())

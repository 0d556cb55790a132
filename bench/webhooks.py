"""Webhook fan-out: events fanned out to 50 endpoints on one local receiver.

The embedded stack (Temporal on SQLite, as `make run`; `--temporal memory` for an in-memory
server) with one worker process, which also runs the dispatcher (it makes each delivery's
first attempt itself), and one API process; the receiver runs here. Events are recorded
straight into `platform_events`, as the workflows and the API record them, except in the API
phase, where they come in over HTTP.

Printed:
  reference  a bare POST loop from this process to the same receiver (aiohttp, 100 in
             flight): what sending alone costs here, without the platform;
  paced      deliveries offered at --rate a second (one event to all endpoints at a time):
             event-to-receipt latency p50 / p99 / max, from the commit of the event to the
             arrival of the request at the receiver;
  burst      --burst deliveries at once: deliveries per second, first event to last receipt,
             and CPU per delivery by process;
  kill       a burst during which the worker (then the API) is SIGKILLed and started again:
             how long until everything arrived, and what was lost or doubled;
  floor      (--floor) workflows doing nothing but one local activity on the same server:
             the ceiling of the earlier design, one workflow per delivery.
Lost: a delivery that never arrived. Doubled: a `webhook-id` the receiver saw twice (a
request in flight when its sender was killed is sent again: receivers de-duplicate on it),
and, separately, a delivery with more than one attempt recorded (never, with no failures).
Targets: p50 < 100 ms and p99 < 500 ms at 100/s offered; a burst of 2,000 at ≥ 200/s;
nothing lost or doubled, including when the worker or the API is killed during a burst.

    .venv/bin/python -m bench.webhooks [--endpoints 50] [--rate 100] [--duration 30] [--burst 2000]
                                       [--no-kill] [--floor] [--temporal sqlite|memory]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import time
import uuid
from datetime import UTC, datetime, timedelta

import aiohttp
import httpx
import psutil
import uvicorn
from temporalio import activity, workflow
from temporalio.worker import Worker

from bench.stack import Stack, embedded_stack, percentile
from campaigns import db, temporal
from campaigns.auth.service import create_key
from campaigns.campaigns import repository as campaigns_repo
from campaigns.domain.webhooks import delivery_id, message_id
from campaigns.webhooks import repository as webhooks_repo
from campaigns.webhooks import secrets


class Receiver:
    """Notes when each delivery (by its webhook-id) first arrives, and how often; answers
    200 at once."""

    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        self.seen: dict[str, int] = {}
        self.changed = asyncio.Event()

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        now = time.time()
        while (await receive()).get("more_body"):
            pass
        msg_id = dict(scope["headers"]).get(b"webhook-id", b"").decode()
        self.seen[msg_id] = self.seen.get(msg_id, 0) + 1
        self.arrivals.setdefault(msg_id, now)
        self.changed.set()
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})

    async def wait_for(self, ids: set[str], timeout: float) -> None:
        deadline = time.time() + timeout
        while not ids <= self.arrivals.keys() and time.time() < deadline:
            self.changed.clear()
            try:
                await asyncio.wait_for(self.changed.wait(), 1)
            except TimeoutError:
                pass

    def doubled(self, ids: set[str]) -> int:
        return sum(1 for i in ids if self.seen.get(i, 0) > 1)


# --- The reference: a bare POST loop ------------------------------------------------------


async def reference(port: int, endpoints: int, n: int, concurrency: int = 100) -> tuple[float, list[float]]:
    """Requests per second and latencies (ms) of plain POSTs to the receiver."""
    body = b'{"type":"lead.created","data":{"leadId":"x","score":80}}'
    gate = asyncio.Semaphore(concurrency)
    latencies: list[float] = []
    async with aiohttp.ClientSession() as http:

        async def one(i: int) -> None:
            async with gate:
                t0 = time.perf_counter()
                headers = {"content-type": "application/json", "webhook-id": f"ref-{i}"}
                async with http.post(f"http://127.0.0.1:{port}/hook/{i % endpoints}", data=body, headers=headers) as r:
                    await r.read()
                latencies.append((time.perf_counter() - t0) * 1000)

        t0 = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(n)))
        return n / (time.perf_counter() - t0), latencies


# --- The earlier design's ceiling -----------------------------------------------------------

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


async def floor_rate(settings, n: int) -> float:
    """Workflows per second, start to completion, when each is one local activity."""
    client = await temporal.connect(settings)
    gate = asyncio.Semaphore(64)

    async def start() -> None:
        async with gate:
            await client.start_workflow(Floor.run, id=f"floor-{uuid.uuid4()}", task_queue="floor")

    async with Worker(client, task_queue="floor", workflows=[Floor], activities=[floor_step]):
        t0 = time.time()
        await asyncio.gather(*(start() for _ in range(n)))
        while FLOOR_DONE < n:
            await asyncio.sleep(0.02)
        return n / (time.time() - t0)


# --- Measuring ---------------------------------------------------------------------------------


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


class Bench:
    def __init__(self, stack: Stack, pool, receiver: Receiver, org, campaign, endpoints: list[uuid.UUID]) -> None:
        self.stack = stack
        self.pool = pool
        self.receiver = receiver
        self.org = org
        self.campaign = campaign
        self.endpoints = endpoints

    def message_ids(self, event_ids: list[uuid.UUID]) -> set[str]:
        # The delivery id is derived from the event and the endpoint, the webhook-id from it.
        return {message_id(delivery_id(e, ep)) for e in event_ids for ep in self.endpoints}

    async def record(self, n: int) -> uuid.UUID:
        event_id = uuid.uuid4()
        async with self.pool.acquire() as conn, conn.transaction():
            await campaigns_repo.record_platform_event(
                conn, event_id=event_id, organization_id=self.org, campaign_id=self.campaign, type_="lead.created",
                data={"leadId": f"lead-{n}", "score": 80}, occurred_at=datetime.now(UTC),
            )
        return event_id

    async def latencies(self, ids: set[str]) -> list[float]:
        """Event commit to receipt, ms, for the deliveries that arrived."""
        recorded = {
            "msg_" + r["id"].hex: r["recorded_at"].timestamp()
            for r in await self.pool.fetch(
                "SELECT d.id, e.recorded_at FROM webhook_deliveries d JOIN platform_events e ON e.id = d.event_id "
                "WHERE d.endpoint_id = ANY($1)", self.endpoints,
            )
        }
        arrivals = self.receiver.arrivals
        return [(arrivals[i] - recorded[i]) * 1000 for i in ids if i in arrivals and i in recorded]

    async def recorded_twice(self) -> int:
        """Deliveries with more than one attempt recorded (none expected: every receipt is 200)."""
        return await self.pool.fetchval(
            "SELECT count(*) FROM (SELECT delivery_id FROM webhook_attempts a JOIN webhook_deliveries d "
            "ON d.id = a.delivery_id WHERE d.endpoint_id = ANY($1) GROUP BY delivery_id HAVING count(*) > 1) x",
            self.endpoints,
        )

    async def paced(self, rate: float, duration: float) -> tuple[list[float], float, int]:
        """One event to every endpoint at a time, `rate` deliveries a second offered."""
        every = len(self.endpoints) / rate
        events = max(1, round(duration / every))
        t0 = time.time()
        recorded = []
        for i in range(events):
            await asyncio.sleep(max(0.0, t0 + i * every - time.time()))
            recorded.append(await self.record(10_000 + i))
        ids = self.message_ids(recorded)
        await self.receiver.wait_for(ids, 120)
        got = [self.receiver.arrivals[i] for i in ids if i in self.receiver.arrivals]
        return await self.latencies(ids), len(got) / (max(got) - t0), len(ids - self.receiver.arrivals.keys())

    async def burst(self, events: int) -> tuple[set[str], float]:
        t0 = time.time()
        recorded = await asyncio.gather(*(self.record(20_000 + i) for i in range(events)))
        ids = self.message_ids(list(recorded))
        return ids, t0

    async def kill_worker(self, events: int) -> dict:
        """A burst; once a quarter has arrived, the worker is SIGKILLed and another started."""
        ids, t0 = await self.burst(events)
        await self._until(lambda: len(ids & self.receiver.arrivals.keys()) >= len(ids) // 4, 120)
        at_kill = len(ids & self.receiver.arrivals.keys())
        worker = next(c for c in self.stack.supervisor.children if c.spec.name.startswith("worker") and c.alive)
        os.kill(worker.process.pid, signal.SIGKILL)
        await worker.process.wait()
        killed_at = time.time()
        await self.stack.start_worker(f"worker-{uuid.uuid4().hex[:4]}")
        await self.receiver.wait_for(ids, 300)
        return self._result(ids, t0, killed_at, at_kill)

    async def kill_api(self, api_url: str, key: str, events: int) -> dict:
        """Qualified leads sent over HTTP, one a request, over about two seconds; halfway the
        API is SIGKILLed and started again, and the client re-sends what was not acknowledged
        (the same event ids: ingestion is idempotent). Each becomes a `lead.created` event."""
        leads = [f"bench-lead-{uuid.uuid4().hex}" for _ in range(events)]
        acknowledged: set[str] = set()
        t0 = time.time()
        killed_at = 0.0

        async def send(http: httpx.AsyncClient, lead: str) -> None:
            event = {"id": lead, "campaignId": str(self.campaign), "type": "lead.qualified",
                     "occurredAt": datetime.now(UTC).isoformat(), "data": {"score": 90}}
            try:
                r = await http.post("/api/events", json={"events": [event]})
                if r.status_code == 200:
                    acknowledged.add(lead)
            except httpx.HTTPError:
                pass

        async with httpx.AsyncClient(base_url=api_url, headers={"Authorization": f"Bearer {key}"}, timeout=10) as http:
            for i, lead in enumerate(leads):
                if i == events // 2:
                    api = next(c for c in self.stack.supervisor.children if c.spec.name.startswith("api") and c.alive)
                    os.kill(api.process.pid, signal.SIGKILL)
                    await api.process.wait()
                    killed_at = time.time()
                    await self.stack.start_api(port=int(api_url.rsplit(":", 1)[1]))
                await send(http, lead)
                await asyncio.sleep(2 / events)
            while len(acknowledged) < len(leads):  # the client's retries
                for lead in set(leads) - acknowledged:
                    await send(http, lead)
        lead_events = [
            r["id"] for r in await self.pool.fetch(
                "SELECT id FROM platform_events WHERE type = 'lead.created' AND data->>'eventId' = ANY($1)", leads)
        ]
        deadline = time.time() + 120
        while len(lead_events) < len(leads) and time.time() < deadline:
            await asyncio.sleep(0.5)
            lead_events = [
                r["id"] for r in await self.pool.fetch(
                    "SELECT id FROM platform_events WHERE type = 'lead.created' AND data->>'eventId' = ANY($1)", leads)
            ]
        ids = self.message_ids(lead_events)
        # Every lead must become exactly one event, so deliveries are counted per lead.
        ids |= {f"missing-event-{n}" for n in range(len(leads) - len(lead_events))}
        await self.receiver.wait_for(ids, 300)
        return self._result(ids, t0, killed_at, None)

    def _result(self, ids: set[str], t0: float, killed_at: float, at_kill: int | None) -> dict:
        got = [self.receiver.arrivals[i] for i in ids if i in self.receiver.arrivals]
        return {
            "deliveries": len(ids),
            "at_kill": at_kill,
            "killed_after_s": killed_at - t0,
            "all_in_s": (max(got) - t0) if got else float("nan"),
            "recovered_after_kill_s": (max(got) - killed_at) if got else float("nan"),
            "lost": len(ids - self.receiver.arrivals.keys()),
            "doubled": self.receiver.doubled(ids),
        }

    @staticmethod
    async def _until(predicate, timeout: float) -> None:
        deadline = time.time() + timeout
        while not predicate() and time.time() < deadline:
            await asyncio.sleep(0.02)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--endpoints", type=int, default=50)
    parser.add_argument("--rate", type=float, default=100, help="deliveries a second offered in the paced phase")
    parser.add_argument("--duration", type=float, default=30, help="seconds of the paced phase")
    parser.add_argument("--burst", type=int, default=2000, help="deliveries in a burst")
    parser.add_argument("--no-kill", action="store_true", help="skip the phases that kill the worker and the API")
    parser.add_argument("--floor", action="store_true", help="also measure one-workflow-per-delivery's ceiling")
    parser.add_argument("--temporal", choices=("sqlite", "memory"), default="sqlite")
    args = parser.parse_args()
    burst_events = max(1, args.burst // args.endpoints)

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

        key, principal = await create_key(pool, organization="bench")
        org, campaign = principal["organization_id"], uuid.uuid4()
        await campaigns_repo.insert(
            pool, campaign_id=campaign, organization_id=org, user_id="bench", name="bench", description=None,
            type_="outbound", channel="phone", timezone="UTC", config={},
        )
        endpoints = []
        for i in range(args.endpoints):
            endpoint = uuid.uuid4()
            await webhooks_repo.insert_endpoint(
                pool, endpoint_id=endpoint, organization_id=org, campaign_id=campaign, kind="webhook",
                url=f"http://127.0.0.1:{port}/hook/{i}", event_types=["lead.*"],
                secret=secrets.encrypt(settings, secrets.new_secret()), max_concurrency=50,
            )
            endpoints.append(endpoint)
        await stack.start_worker()
        api_url = await stack.start_api()
        bench = Bench(stack, pool, receiver, org, campaign, endpoints)

        # Warm-up: connections, caches, the worker's first polls.
        warm = bench.message_ids([await bench.record(-1)])
        await receiver.wait_for(warm, 120)

        ref_rate, ref_lat = await reference(port, args.endpoints, args.burst)

        paced_lat, paced_rate, paced_lost = await bench.paced(args.rate, args.duration)

        pids = {c.spec.name: c.process.pid for c in stack.supervisor.children if c.process}
        pids["bench (receiver)"] = os.getpid()
        cpu_before = cpu_seconds(pids)
        burst_ids, t0 = await bench.burst(burst_events)
        await receiver.wait_for(burst_ids, 600)
        got = [receiver.arrivals[i] for i in burst_ids if i in receiver.arrivals]
        burst_s = max(got) - t0
        cpu_after = cpu_seconds(pids)
        cpu_per_delivery = {k: (cpu_after[k] - cpu_before[k]) * 1000 / max(1, len(got)) for k in pids}
        burst_lost, burst_doubled = len(burst_ids - receiver.arrivals.keys()), receiver.doubled(burst_ids)
        twice_before_kills = await bench.recorded_twice()

        kills = {}
        if not args.no_kill:
            await asyncio.sleep(1)
            kills["worker"] = await bench.kill_worker(burst_events)
            await asyncio.sleep(1)
            kills["API"] = await bench.kill_api(api_url, key, burst_events)
        twice_after_kills = await bench.recorded_twice()

        server.should_exit = True
        await server_task
        await pool.close()
        floor = await floor_rate(settings, 1000) if args.floor else None
    load = os.getloadavg()

    print(f"\nwebhook fan-out — {args.endpoints} endpoints on one receiver, Temporal dev server on {args.temporal}, "
          f"{os.cpu_count()} cores, load average {load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f}")
    print(f"  reference  bare POST loop, {args.burst} requests, 100 in flight: {ref_rate:.0f}/s, "
          f"p50 {statistics.median(ref_lat):.1f} ms, p99 {percentile(ref_lat, 99):.1f} ms")
    print(f"  paced      {args.rate:.0f} deliveries/s offered for {args.duration:.0f} s ({paced_rate:.0f}/s delivered): "
          f"event-to-receipt p50 {statistics.median(paced_lat):.0f} ms, p99 {percentile(paced_lat, 99):.0f} ms, "
          f"max {max(paced_lat):.0f} ms  (targets p50 < 100, p99 < 500); lost {paced_lost}")
    print(f"  burst      {len(got)} deliveries in {burst_s:.2f} s: {len(got) / burst_s:.0f} deliveries/s  (target ≥ 200); "
          f"lost {burst_lost}, doubled {burst_doubled}")
    print("             CPU per delivery: " + ", ".join(f"{k} {v:.2f} ms" for k, v in cpu_per_delivery.items()))
    for what, r in kills.items():
        print(f"  kill {what:<6} {r['deliveries']} deliveries, {what} SIGKILLed after {r['killed_after_s']:.1f} s"
              + (f" ({r['at_kill']} arrived)" if r["at_kill"] is not None else "")
              + f"; all arrived {r['all_in_s']:.1f} s after the first event "
              f"({r['recovered_after_kill_s']:.1f} s after the kill); lost {r['lost']}, "
              f"received twice {r['doubled']}")
    print(f"  recorded   deliveries with more than one attempt: {twice_before_kills} before the kills, "
          f"{twice_after_kills} after")
    if floor is not None:
        print(f"  floor      one-local-activity workflows on the same server: {floor:.0f}/s "
              "(the ceiling of one workflow per delivery)")


if __name__ == "__main__":
    asyncio.run(main())

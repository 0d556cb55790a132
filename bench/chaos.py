"""Chaos: mixed traffic for minutes while the worker is killed and Redis and Postgres freeze.

The embedded stack (Temporal on SQLite, Postgres, Redis, the worker and the API as separate
processes; the worker restarted by a supervisor as `make run` does), and here:

  creates       a new campaign every `1/--create-rate` s;
  transitions   activate / pause / resume / end of random campaigns at `--transition-rate`/s,
                each client remembering the last definite answer it got;
  events        `--event-rate` analytics events a second (whole calls: started + completed),
                a batch retried with the same ids until it is accepted, as a pipeline does;
  webhooks      one organization-wide endpoint subscribed to `campaign.*`, on a receiver that
                is down for `--receiver-down` s in the middle of the run.

Faults: the worker SIGKILLed every `--kill-every` s; Redis and Postgres each frozen
(SIGSTOP) once for `--freeze` s. Afterwards everything is left to settle and the run
prints requests by status, p99 latency per endpoint, events accepted vs recorded vs
counted, deliveries owed vs received, and campaigns whose status disagrees with the last
definite answer their client got. Target: 0 lost, 0 double, 0 disagreeing, 0 × 500.

    .venv/bin/python -m bench.chaos [--minutes 10] [--event-rate 2000]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import sys
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg
import httpx

from bench.stack import Stack, embedded_stack, percentile
from campaigns.stack import services
from campaigns.stack.supervisor import Supervisor
from tests.support.servers import Server

ACTIONS = {"activate": "active", "pause": "paused", "resume": "active", "end": "ended"}
FINAL_STATUSES = {"active", "paused", "ended", "scheduled", "draft", "archived"}


@dataclass
class Tally:
    statuses: Counter = field(default_factory=Counter)  # (endpoint, status) → count
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    expected: dict[str, str] = field(default_factory=dict)  # campaign → status its client last heard
    pending: dict[str, str] = field(default_factory=dict)  # campaign → accepted (202) target
    unknown: set[str] = field(default_factory=set)  # a change whose answer never came: either outcome is fair
    campaigns: list[str] = field(default_factory=list)
    events_accepted: set[str] = field(default_factory=set)
    completed_accepted: int = 0

    def note(self, endpoint: str, status: int, seconds: float) -> None:
        self.statuses[(endpoint, status)] += 1
        self.latencies[endpoint].append(seconds)


class Receiver:
    """An ASGI receiver that notes each `webhook-id` once; can be taken down and back up."""

    def __init__(self) -> None:
        self.ids: set[str] = set()
        self.repeats = 0

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        while (await receive()).get("more_body"):
            pass
        msg_id = dict(scope["headers"]).get(b"webhook-id", b"").decode()
        if msg_id in self.ids:
            self.repeats += 1
        self.ids.add(msg_id)
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})


async def timed(tally: Tally, client: httpx.AsyncClient, endpoint: str, method: str, url: str, **kw) -> httpx.Response:
    started = time.perf_counter()
    try:
        r = await client.request(method, url, **kw)
    except httpx.HTTPError:
        tally.note(endpoint, 0, time.perf_counter() - started)  # no answer within the client's timeout
        raise
    tally.note(endpoint, r.status_code, time.perf_counter() - started)
    return r


async def creator(tally: Tally, api: httpx.AsyncClient, rate: float, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        n += 1
        key = f"chaos-create-{n}"
        body = {"name": f"Chaos {n}", "type": "outbound", "channel": "phone", "flowId": "flow-1"}
        while not stop.is_set():  # a client retries a create with the same Idempotency-Key
            try:
                r = await timed(tally, api, "create", "POST", "/api/campaigns", json=body,
                                headers={"Idempotency-Key": key})
            except httpx.HTTPError:
                await asyncio.sleep(0.5)
                continue
            if r.status_code == 201:
                cid = r.json()["campaign"]["id"]
                if cid not in tally.expected:
                    tally.campaigns.append(cid)
                    tally.expected[cid] = "draft"
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1 / rate)


async def transitioner(tally: Tally, api: httpx.AsyncClient, rate: float, stop: asyncio.Event) -> None:
    n = 0
    while not stop.is_set():
        await asyncio.sleep(random.expovariate(rate))
        if not tally.campaigns:
            continue
        cid = random.choice(tally.campaigns)
        if tally.expected.get(cid) == "ended":
            continue
        action = random.choice(list(ACTIONS))
        n += 1
        try:
            r = await timed(tally, api, action, "POST", f"/api/campaigns/{cid}/{action}",
                            headers={"Idempotency-Key": f"chaos-{n}"})
        except httpx.HTTPError:
            tally.unknown.add(cid)  # no answer: the client cannot expect either outcome
            continue
        if r.status_code == 200:
            tally.expected[cid] = r.json()["campaign"]["status"]
            tally.pending.pop(cid, None)
            tally.unknown.discard(cid)
        elif r.status_code == 202:
            tally.pending[cid] = ACTIONS[action]
            tally.unknown.discard(cid)


async def eventer(tally: Tally, api: httpx.AsyncClient, rate: float, stop: asyncio.Event) -> None:
    """Whole calls to the active campaigns, in batches a tenth of a second apart."""
    batch_calls = max(1, int(rate / 2 / 10))
    while not stop.is_set():
        tick = time.perf_counter()
        active = [c for c, s in tally.expected.items() if s == "active"]
        if active:
            now = datetime.now(UTC).isoformat()
            events = []
            for _ in range(batch_calls):
                cid, call = random.choice(active), uuid.uuid4().hex[:16]
                events += [
                    {"id": f"{call}-s", "campaignId": cid, "type": "call.started", "occurredAt": now,
                     "callId": call, "data": {"waitSec": 1}},
                    {"id": f"{call}-c", "campaignId": cid, "type": "call.completed", "occurredAt": now,
                     "callId": call, "data": {"durationSec": 30, "outcome": "connected"}},
                ]
            while True:  # the same batch, same ids, until the platform takes it
                try:
                    r = await timed(tally, api, "events", "POST", "/api/events", json={"events": events})
                except httpx.HTTPError:
                    await asyncio.sleep(0.2)
                    continue
                if r.status_code == 200:
                    tally.events_accepted.update(e["id"] for e in events)
                    break
                if r.status_code in (429, 503):
                    await asyncio.sleep(0.2)
                    continue
                break  # a campaign ended meanwhile and the batch was refused: those events are not owed
        await asyncio.sleep(max(0.0, 0.1 - (time.perf_counter() - tick)))


async def reader(tally: Tally, api: httpx.AsyncClient, rate: float, stop: asyncio.Event) -> None:
    while not stop.is_set():
        await asyncio.sleep(1 / rate)
        if tally.campaigns:
            cid = random.choice(tally.campaigns)
            with contextlib.suppress(httpx.HTTPError):
                await timed(tally, api, "read", "GET", f"/api/campaigns/{cid}")
                await timed(tally, api, "real-time", "GET", f"/api/campaigns/{cid}/analytics/real-time")


def pid_of(supervisor: Supervisor, name: str) -> int:
    child = next(c for c in supervisor.children if c.spec.name == name)
    assert child.process is not None
    return child.process.pid


async def faults(stack: Stack, workers: Supervisor, args: argparse.Namespace, receiver_server, log: list[str],
                 stop: asyncio.Event) -> None:
    start = time.monotonic()
    plan = sorted(
        [(t, "kill worker") for t in range(int(args.kill_every), int(args.minutes * 60), int(args.kill_every))]
        + [(args.minutes * 60 * 0.3, "freeze redis"), (args.minutes * 60 * 0.6, "freeze postgres"),
           (args.minutes * 60 * 0.7, "receiver down")]
    )
    for at, what in plan:
        await asyncio.sleep(max(0.0, at - (time.monotonic() - start)))
        if stop.is_set():
            return
        log.append(f"{time.monotonic() - start:6.1f}s {what}")
        if what == "kill worker":
            os.kill(pid_of(workers, "worker"), signal.SIGKILL)  # the supervisor starts a new one
        elif what.startswith("freeze"):
            pid = pid_of(stack.supervisor, what.split()[1])
            os.kill(pid, signal.SIGSTOP)
            await asyncio.sleep(args.freeze)
            os.kill(pid, signal.SIGCONT)
            log.append(f"{time.monotonic() - start:6.1f}s {what.split()[1]} thawed")
        elif what == "receiver down":
            await receiver_server.stop()
            await asyncio.sleep(args.receiver_down)
            await receiver_server.start()
            log.append(f"{time.monotonic() - start:6.1f}s receiver up")


async def settle(tally: Tally, api: httpx.AsyncClient, within: float) -> None:
    """Wait until no accepted change is pending and the campaigns' statuses stop moving."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        pending = 0
        for cid in list(tally.campaigns):
            with contextlib.suppress(httpx.HTTPError):
                r = await api.get(f"/api/campaigns/{cid}")
                if r.status_code == 200 and r.json()["campaign"].get("pendingStatusChange"):
                    pending += 1
        if not pending:
            return
        await asyncio.sleep(2)


async def run(args: argparse.Namespace) -> None:
    async with embedded_stack() as stack:
        stack.env["WEBHOOK_ALLOWED_NETWORKS"] = "127.0.0.0/8"
        workers = Supervisor(restart=True)
        await workers.start(services.ServiceSpec(
            name="worker", argv=[sys.executable, "-m", "campaigns.cli", "worker"], env=stack.env,
            log_file=stack.settings.data_dir / "logs" / "worker.log"))
        url = await stack.start_api()
        key = await stack.api_key("chaos")
        receiver = Receiver()
        receiver_server = Server(receiver)
        await receiver_server.start()
        timeout = httpx.Timeout(30.0)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=timeout,
                                     limits=httpx.Limits(max_connections=64)) as api:
            r = await api.post("/api/webhooks", json={
                "url": f"{receiver_server.url}/hook", "eventTypes": ["campaign.*"],
                "retryConfig": {"maxAttempts": 20, "initialIntervalSeconds": 1, "maxIntervalSeconds": 10,
                                "backoffCoefficient": 2},
            })
            assert r.status_code == 201, r.text
            webhook_id = r.json()["webhook"]["id"]

            tally, stop, log = Tally(), asyncio.Event(), []
            started = time.monotonic()
            tasks = [
                asyncio.create_task(creator(tally, api, args.create_rate, stop)),
                *(asyncio.create_task(transitioner(tally, api, args.transition_rate / 4, stop)) for _ in range(4)),
                *(asyncio.create_task(eventer(tally, api, args.event_rate / 2, stop)) for _ in range(2)),
                asyncio.create_task(reader(tally, api, args.read_rate, stop)),
                asyncio.create_task(faults(stack, workers, args, receiver_server, log, stop)),
            ]
            await asyncio.sleep(args.minutes * 60)
            stop.set()
            await asyncio.gather(*tasks, return_exceptions=True)
            traffic_s = time.monotonic() - started

            await settle(tally, api, within=180)
            pool = await asyncpg.connect(stack.settings.database_dsn)
            try:
                # The derived views catch up: every accepted batch applied by the refresher.
                deadline = time.monotonic() + 180
                while time.monotonic() < deadline:  # polling another process's progress: no event to wait on
                    if not await pool.fetchval("SELECT count(*) FROM analytics_outbox"):
                        break
                    await asyncio.sleep(1)
                recorded = await pool.fetchval(
                    "SELECT count(*) FROM analytics_events WHERE event_id = ANY($1::text[])",
                    list(tally.events_accepted))
                counted = await pool.fetchval(
                    "SELECT coalesce(sum(completed_calls), 0) FROM campaign_performance "
                    "WHERE campaign_id = ANY($1::uuid[])", [uuid.UUID(c) for c in tally.campaigns])
                owed_completed = sum(1 for e in tally.events_accepted if e.endswith("-c"))
                # Deliveries owed: every campaign.* event of the organization since the webhook existed.
                deadline = time.monotonic() + 240
                owed = 0
                while time.monotonic() < deadline:
                    owed = await pool.fetchval(
                        "SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1", uuid.UUID(webhook_id))
                    if len(receiver.ids) >= owed:
                        break
                    await asyncio.sleep(2)
                events_owed = await pool.fetchval(
                    "SELECT count(*) FROM platform_events e JOIN webhook_endpoints w ON w.id = $1 "
                    "WHERE e.organization_id = w.organization_id AND e.type LIKE 'campaign.%' "
                    "AND e.recorded_at >= w.created_at", uuid.UUID(webhook_id))
                finals = {str(r["id"]): r["status"] for r in await pool.fetch(
                    "SELECT id, status FROM campaigns WHERE id = ANY($1::uuid[])",
                    [uuid.UUID(c) for c in tally.campaigns])}
            finally:
                await pool.close()
            await receiver_server.stop()

    checked = [c for c in tally.expected if c not in tally.pending and c not in tally.unknown]
    disagreeing = [c for c in checked if finals.get(c) != tally.expected[c]]
    pending_wrong = [c for c, t in tally.pending.items() if finals.get(c) not in (t, "ended")]
    print(f"\nChaos run: {traffic_s / 60:.1f} min of traffic on {os.cpu_count()} cores")
    print("faults:\n  " + "\n  ".join(log))
    print("\nrequests by endpoint and status (0 = no answer within 30 s):")
    for endpoint in sorted(tally.latencies):
        by_status = {s: n for (e, s), n in sorted(tally.statuses.items()) if e == endpoint}
        lat = tally.latencies[endpoint] or [0.0]
        print(f"  {endpoint:<10} {dict(by_status)}   p50 {percentile(lat, 50) * 1000:.0f} ms   "
              f"p99 {percentile(lat, 99) * 1000:.0f} ms   max {max(lat) * 1000:.0f} ms")
    five_hundreds = sum(n for (_, s), n in tally.statuses.items() if s >= 500 and s != 503)
    print(f"\nevents accepted {len(tally.events_accepted):,}, recorded {recorded:,}; "
          f"completed calls owed {owed_completed:,}, counted {counted:,}")
    print(f"  lost {max(0, len(tally.events_accepted) - recorded) + max(0, owed_completed - counted):,}, "
          f"counted twice {max(0, counted - owed_completed):,}")
    print(f"webhook deliveries owed {owed:,} (campaign.* events {events_owed:,}), received {len(receiver.ids):,}, "
          f"repeated {receiver.repeats:,} (same webhook-id; receivers drop them)")
    print(f"campaigns {len(tally.campaigns):,} ({len(tally.unknown)} with a change left unanswered): "
          f"disagreeing with their client's last answer {len(disagreeing)}, "
          f"accepted changes not applied {len(pending_wrong)}")
    print(f"500s (other than 503): {five_hundreds}")
    ok = (not disagreeing and not pending_wrong and five_hundreds == 0 and recorded == len(tally.events_accepted)
          and counted == owed_completed and len(receiver.ids) >= owed)
    print("target (0 lost, 0 double, 0 disagreeing, 0 × 500): " + ("met" if ok else "NOT met"))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--minutes", type=float, default=10)
    p.add_argument("--event-rate", type=float, default=2000)
    p.add_argument("--create-rate", type=float, default=1)
    p.add_argument("--transition-rate", type=float, default=4)
    p.add_argument("--read-rate", type=float, default=5)
    p.add_argument("--kill-every", type=float, default=90)
    p.add_argument("--freeze", type=float, default=15)
    p.add_argument("--receiver-down", type=float, default=120)
    asyncio.run(run(p.parse_args()))


if __name__ == "__main__":
    main()

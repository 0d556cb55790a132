"""Ingestion benchmark: sustained events/s over HTTP, freshness, and nothing lost or counted twice.

Starts the embedded stack (Postgres with its durable defaults, Redis, the Temporal dev
server, a worker and the API with `--api-workers` processes) in a fresh directory and
creates `--campaigns` campaigns through the API. Then, with `--clients` concurrent clients
in a separate process posting batches of `--batch` realistic events (calls with their
costs, leads, conversions, widget traffic; `--duplicates` of the batches sent twice):

1. throughput: every client sends its next batch as soon as the last is answered, for
   `--duration` seconds: the sustained rate the stack accepts;
2. freshness under load: batches leave on a fixed schedule at `--rate` events/s (at most
   80% of phase 1's rate, so the stack is loaded but not saturated) while a probe sends
   one lead every `--probe-every` seconds to a campaign of its own and measures how long
   until it shows in `GET /analytics/real-time` and on the campaign's SSE stream, from
   the moment it was sent and from the moment it was accepted. (Phase 1 runs the probe
   too: freshness when saturated.)

Afterwards it checks that every event was recorded once (Postgres rows, the answers'
accepted and duplicate counts, the performance summary and the real-time counters against
what the generator sent), and measures the raw COPY rate of the same database into a table
shaped like the events table, for comparison.

    python bench/ingest.py [--duration 30] [--clients 12] [--batch 2500] [--campaigns 1000]

Targets: at least 20,000 events/s sustained, freshness p99 under 1 s, nothing lost or
double counted. Figures depend on the machine: the script prints them with the core count.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import random
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import httpx_sse
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from campaigns import db  # noqa: E402
from campaigns.auth.service import create_key  # noqa: E402
from campaigns.domain import periods  # noqa: E402
from campaigns.stack import services  # noqa: E402
from campaigns.stack.supervisor import Supervisor  # noqa: E402

TIMEZONES = ("UTC", "America/New_York", "Europe/Paris", "Asia/Kolkata", "Australia/Sydney")


# --- The load generator (its own process, so it does not share a GIL with the probes) -----


def _batch(campaigns: list[str], size: int, rng: random.Random, serial: str) -> tuple[bytes, dict]:
    """A batch of realistic traffic, and what it adds per campaign (for the final check)."""
    now = datetime.now(UTC).isoformat()
    events: list[dict] = []
    expect: dict[str, list[int]] = {}
    n = 0
    while len(events) < size:
        cid = campaigns[rng.randrange(len(campaigns))]
        e = expect.setdefault(cid, [0, 0, 0, 0])  # calls, leads, cost micros, events
        base = f"{serial}-{n}"
        n += 1
        kind = rng.random()
        if kind < 0.15:  # widget traffic
            events.append({"id": base, "campaignId": cid, "type": "widget.impression", "occurredAt": now})
            e[3] += 1
            continue
        call = f"c{base}"
        block = [
            {"id": base + "s", "campaignId": cid, "type": "call.started", "occurredAt": now, "callId": call,
             "data": {"waitSec": rng.randrange(0, 30)}},
            {"id": base + "e", "campaignId": cid, "type": "call.completed", "occurredAt": now, "callId": call,
             "data": {"durationSec": rng.randrange(5, 600), "outcome": rng.choice(("connected", "voicemail",
                                                                                      "no_answer", "connected"))}},
        ]
        for category in ("telephony", "stt", "tts", "llm"):
            micros = rng.randrange(1000, 90_000)
            block.append({"id": base + category, "campaignId": cid, "type": "cost", "occurredAt": now,
                          "data": {"amount": micros / 1e6, "category": category}})
            e[2] += micros
        if rng.random() < 0.2:
            block.append({"id": base + "l", "campaignId": cid, "type": "lead.qualified", "occurredAt": now,
                          "callId": call, "subjectId": f"s{base}", "data": {"score": rng.randrange(50, 100)}})
            e[1] += 1
        e[0] += 1
        e[3] += len(block)
        events.extend(block)
    return orjson.dumps({"events": events}), expect


def _load(url: str, key: str, campaigns: list[str], clients: int, size: int, duration: float, warmup: float,
          duplicates: float, rate: float | None, tag: str, out: mp.Queue) -> None:
    """Closed loop (each client sends its next batch when the last is answered) or, with
    `rate`, open loop: batches leave on a fixed schedule whatever the answers."""

    async def main() -> dict:
        rng = random.Random(hash(tag) & 0xFFFF)
        start = time.monotonic()
        stop_at = start + warmup + duration
        stats = {"accepted": 0, "duplicates": 0, "rejected": 0, "requests": 0, "errors": 0, "window_accepted": 0,
                 "latencies": [], "expect": defaultdict(lambda: [0, 0, 0, 0]), "sent_unique": 0, "resent": 0}
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=120,
                                     limits=limits) as http:

            async def client(k: int) -> None:
                serial = 0
                interval = clients * size / rate if rate else 0.0
                next_at = start + k * interval / clients
                while time.monotonic() < stop_at:
                    if rate:
                        await asyncio.sleep(max(0.0, next_at - time.monotonic()))
                        next_at += interval
                    body, expect = _batch(campaigns, size, rng, f"{tag}{k}-{serial}")
                    serial += 1
                    for e_cid, values in expect.items():
                        acc = stats["expect"][e_cid]
                        for i, v in enumerate(values):
                            acc[i] += v
                    stats["sent_unique"] += sum(v[3] for v in expect.values())
                    times = 2 if rng.random() < duplicates else 1
                    stats["resent"] += (times - 1) * sum(v[3] for v in expect.values())
                    for _ in range(times):
                        t0 = time.monotonic()
                        r = await http.post("/api/events", content=body, headers={"content-type": "application/json"})
                        t1 = time.monotonic()
                        stats["requests"] += 1
                        if r.status_code != 200:
                            stats["errors"] += 1
                            print("load: HTTP", r.status_code, r.text[:200], file=sys.stderr)
                            continue
                        answer = r.json()
                        stats["accepted"] += answer["accepted"]
                        stats["duplicates"] += answer["duplicates"]
                        stats["rejected"] += answer["rejected"]
                        if start + warmup <= t1 <= stop_at:
                            stats["window_accepted"] += answer["accepted"]
                            stats["latencies"].append(t1 - t0)

            await asyncio.gather(*(client(k) for k in range(clients)))
        stats["expect"] = dict(stats["expect"])
        return stats

    out.put(asyncio.run(main()))


# --- Freshness probe ------------------------------------------------------------------------


async def _probe(http: httpx.AsyncClient, url: str, key: str, cid: str, until: float, every: float,
                 *, sent_before: int = 0) -> dict:
    """One lead at a time; how long until it shows on the real-time endpoint and on the SSE
    stream, from the moment it is sent and from the moment it is accepted (the answer)."""
    sse_seen: dict[int, float] = {}
    sse_ready = asyncio.Event()

    async def watch() -> None:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=None) as c:
            async with httpx_sse.aconnect_sse(c, "GET", f"/api/campaigns/{cid}/analytics/stream") as source:
                async for sse in source.aiter_sse():
                    if sse.event == "metrics":
                        leads = json.loads(sse.data)["todayLeads"]
                        sse_seen.setdefault(leads, time.monotonic())
                        sse_ready.set()

    watcher = asyncio.create_task(watch())
    await asyncio.wait_for(sse_ready.wait(), 30)
    realtime_ms, sse_ms, accepted_rt_ms, accepted_sse_ms, sent = [], [], [], [], 0
    try:
        while time.monotonic() < until:
            sent += 1
            total = sent_before + sent
            event = {"id": f"probe-{sent}-{uuid.uuid4().hex[:6]}", "campaignId": cid, "type": "lead.qualified",
                     "occurredAt": datetime.now(UTC).isoformat(), "data": {"score": 90}}
            t0 = time.monotonic()
            r = await http.post("/api/events", json={"events": [event]})
            t_accepted = time.monotonic()
            assert r.status_code == 200 and r.json()["accepted"] == 1, r.text
            while True:
                m = (await http.get(f"/api/campaigns/{cid}/analytics/real-time")).json()["metrics"]
                if m["todayLeads"] >= total:
                    now = time.monotonic()
                    realtime_ms.append((now - t0) * 1000)
                    accepted_rt_ms.append((now - t_accepted) * 1000)
                    break
                await asyncio.sleep(0.005)
            deadline = time.monotonic() + 10
            while total not in sse_seen and time.monotonic() < deadline:
                await asyncio.sleep(0.002)
            if total in sse_seen:
                sse_ms.append((sse_seen[total] - t0) * 1000)
                accepted_sse_ms.append(max(0.0, sse_seen[total] - t_accepted) * 1000)
            await asyncio.sleep(max(0.0, every - (time.monotonic() - t0)))
    finally:
        watcher.cancel()
    return {"realtime": realtime_ms, "sse": sse_ms, "accepted_realtime": accepted_rt_ms,
            "accepted_sse": accepted_sse_ms, "sent": sent}


def _merge(a: dict, b: dict) -> dict:
    out = {k: a[k] + b[k] for k in ("accepted", "duplicates", "rejected", "requests", "errors", "sent_unique",
                                     "resent")}
    expect: dict[str, list[int]] = {}
    for part in (a["expect"], b["expect"]):
        for cid, values in part.items():
            acc = expect.setdefault(cid, [0, 0, 0, 0])
            for i, v in enumerate(values):
                acc[i] += v
    out["expect"] = expect
    return out


def _cpu_seconds(sup: Supervisor, extra: dict[str, int]) -> dict[str, float]:
    """CPU time used so far by each piece of the stack (a process and its children)."""
    out: dict[str, float] = {}
    pids = {c.spec.name: c.process.pid for c in sup.children if c.process} | extra
    for name, pid in pids.items():
        total = 0.0
        try:
            root = psutil.Process(pid)
            # The bench's own process is the parent of everything: count it alone.
            for proc in [root, *(root.children(recursive=True) if pid != os.getpid() else [])]:
                with contextlib.suppress(psutil.Error):
                    times = proc.cpu_times()
                    total += times.user + times.system
        except psutil.Error:
            pass
        out[name] = total
    return out


async def _until_idle(sup: Supervisor, names: tuple[str, ...], *, below: float = 0.1, timeout: float = 300) -> None:
    """Wait until these pieces use less than `below` of a core over a second."""
    deadline = time.monotonic() + timeout
    before = _cpu_seconds(sup, {})
    while time.monotonic() < deadline:
        await asyncio.sleep(1)
        now = _cpu_seconds(sup, {})
        if all(now.get(n, 0) - before.get(n, 0) < below for n in names):
            return
        before = now


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


# --- Raw COPY, for comparison ------------------------------------------------------------------


async def _copy_rate(dsn: str, rows: int) -> float:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS bench_copy")
        await conn.execute("CREATE TABLE bench_copy (LIKE analytics_events INCLUDING ALL)")
        org, cids = uuid.uuid4(), [uuid.uuid4() for _ in range(1000)]
        now = datetime.now(UTC)
        data = '{"amount":0.0123,"category":"llm"}'
        cols = ["organization_id", "event_id", "campaign_id", "type", "occurred_at", "call_id", "data"]
        batches = [[(org, f"copy-{b}-{i}", cids[i % 1000], "cost", now, f"c{i}", data) for i in range(5000)]
                   for b in range(rows // 5000)]
        start = time.monotonic()
        for batch in batches:
            await conn.copy_records_to_table("bench_copy", records=batch, columns=cols)
        elapsed = time.monotonic() - start
        await conn.execute("DROP TABLE bench_copy")
        return len(batches) * 5000 / elapsed
    finally:
        await conn.close()


# --- The run ------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> int:
    data = Path(args.data_dir or tempfile.mkdtemp(prefix="bench-ingest-"))
    sup = Supervisor(restart=False)
    api_port, pg_port, redis_port, t_port = (services.free_port() for _ in range(4))
    try:
        spec, dsn = services.postgres(data, pg_port)  # durable defaults, as in production
        await sup.start(spec)
        spec, redis_url = services.redis(data, redis_port, persist=False)
        await sup.start(spec)
        spec, temporal_address = services.temporal(None, t_port, None, log_dir=data)
        await sup.start(spec)
        await db.migrate(dsn)
        env = {"DATABASE_URL": dsn, "REDIS_URL": redis_url, "TEMPORAL_ADDRESS": temporal_address,
               "API_PORT": str(api_port), "LOG_LEVEL": "warning", "DATA_DIR": str(data),
               # The check reads every campaign's /real-time one after the other, faster than a
               # key's limit allows: benchmarks measure the platform, not the limiter.
               "RATE_LIMIT_PER_SECOND": "0", "RATE_LIMIT_ORG_PER_SECOND": "0"}
        python = [sys.executable, "-m", "campaigns.cli"]
        await sup.start(services.ServiceSpec("worker", [*python, "worker"], env=env,
                                             log_file=data / "logs" / "worker.log"))
        url = f"http://127.0.0.1:{api_port}"

        async def api_ready() -> None:
            async with httpx.AsyncClient(timeout=2) as c:
                (await c.get(f"{url}/readyz")).raise_for_status()

        await sup.start(services.ServiceSpec("api", [*python, "api", "--workers", str(args.api_workers)], env=env,
                                             probe=api_ready, log_file=data / "logs" / "api.log"))
        pool = await db.create_pool(dsn, min_size=1, max_size=4)
        key, _ = await create_key(pool, organization=f"bench-{uuid.uuid4().hex[:6]}")

        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as http:
            print(f"creating {args.campaigns} campaigns…", flush=True)
            campaigns: list[str] = []
            tz_of: dict[str, str] = {}
            sem = asyncio.Semaphore(16)

            async def make(i: int) -> None:
                tz = TIMEZONES[i % len(TIMEZONES)]
                async with sem:
                    r = await http.post("/api/campaigns", json={"name": f"bench {i}", "type": "outbound",
                                                                "channel": "phone", "timezone": tz})
                r.raise_for_status()
                cid = r.json()["campaign"]["id"]
                campaigns.append(cid)
                tz_of[cid] = tz

            t = time.monotonic()
            await asyncio.gather(*(make(i) for i in range(args.campaigns + 1)))
            probe_cid = campaigns.pop()
            # Each new campaign's workflow runs its first tasks on the worker: let that settle,
            # so the load does not share the machine with a thousand workflow starts.
            await _until_idle(sup, ("worker", "temporal"))
            org = await pool.fetchval("SELECT organization_id FROM campaigns WHERE id = $1", uuid.UUID(probe_cid))
            print(f"  done in {time.monotonic() - t:.1f}s", flush=True)

            def start_load(rate: float | None, tag: str) -> tuple[mp.Process, mp.Queue]:
                ctx = mp.get_context("spawn")
                queue: mp.Queue = ctx.Queue()
                process = ctx.Process(target=_load, args=(url, key, campaigns, args.clients, args.batch, args.duration,
                                                          args.warmup, args.duplicates, rate, tag, queue))
                process.start()
                return process, queue

            async def phase(rate: float | None, tag: str) -> tuple[dict, dict]:
                process, queue = start_load(rate, tag)
                await asyncio.sleep(args.warmup)
                cpu_before = _cpu_seconds(sup, {"load generator": process.pid, "bench (probe)": os.getpid()})
                probe = await _probe(http, url, key, probe_cid, time.monotonic() + args.duration, args.probe_every,
                                     sent_before=probes_sent[0])
                cpu_after = _cpu_seconds(sup, {"load generator": process.pid, "bench (probe)": os.getpid()})
                probes_sent[0] += probe["sent"]
                load = await asyncio.to_thread(queue.get)
                process.join()
                load["cpu"] = {k: cpu_after[k] - cpu_before.get(k, 0.0) for k in cpu_after}
                return load, probe

            probes_sent = [0]
            print(f"phase 1, throughput: {args.clients} clients as fast as answered, batches of {args.batch}, "
                  f"{args.warmup:.0f}s warm-up + {args.duration:.0f}s measured…", flush=True)
            load1, probe1 = await phase(None, "a")
            max_rate = load1["window_accepted"] / args.duration
            rate = min(args.rate, 0.8 * max_rate) if args.rate else 0.8 * max_rate
            print(f"phase 2, freshness under load: {rate:,.0f} events/s on a fixed schedule…", flush=True)
            load2, probe2 = await phase(rate, "b")
            load = _merge(load1, load2)
            probe = {"sent": probe1["sent"] + probe2["sent"]}

            print("checking: waiting for the refresher to apply every batch…", flush=True)
            deadline = time.monotonic() + 300
            drain_start = time.monotonic()
            while await pool.fetchval("SELECT count(*) FROM analytics_outbox") and time.monotonic() < deadline:
                await asyncio.sleep(0.2)
            drain_s = time.monotonic() - drain_start

            rows = await pool.fetchval("SELECT count(*) FROM analytics_events WHERE organization_id = $1", org)
            perf = {str(r["campaign_id"]): r for r in await pool.fetch(
                "SELECT campaign_id, total_calls, qualified_leads, total_cost FROM campaign_performance "
                "WHERE organization_id = $1", org)}
            expect = load["expect"]
            perf_mismatch = [
                c for c, (calls, leads, micros, _) in expect.items()
                if (perf[c]["total_calls"], perf[c]["qualified_leads"], round(float(perf[c]["total_cost"]) * 1e6))
                != (calls, leads, micros)
            ]
            live_mismatch = []
            today = {tz: periods.local_date(datetime.now(UTC), tz) for tz in TIMEZONES}
            for chunk in range(0, len(campaigns), 100):
                for cid in campaigns[chunk:chunk + 100]:
                    m = (await http.get(f"/api/campaigns/{cid}/analytics/real-time")).json()["metrics"]
                    calls, leads, micros, _ = expect.get(cid, [0, 0, 0, 0])
                    if m["day"] != today[tz_of[cid]].isoformat():
                        continue  # crossed a local midnight during the run: not comparable
                    if (m["todayCalls"], m["todayLeads"], round(m["todayCost"] * 1e6)) != (calls, leads, micros):
                        live_mismatch.append(cid)

        copy_rate = await _copy_rate(dsn, args.copy_rows)
        await pool.close()
    finally:
        await sup.stop()

    sent = load["sent_unique"] + probe["sent"]
    achieved = load2["window_accepted"] / args.duration

    def ms(values: list[float]) -> str:
        return f"{_pct(values, .5):>5.0f} / {_pct(values, .99):>5.0f} ms"

    print()
    print(f"machine: {os.cpu_count()} cores, shared with everything else running (figures are indicative)")
    print(f"setup: {args.campaigns} campaigns, {args.clients} clients, batches of {args.batch}, "
          f"{args.api_workers} API processes, durable Postgres, {args.duplicates:.0%} of batches sent twice")
    print()
    print(f"sustained ingest over HTTP (phase 1):  {max_rate:>9,.0f} events/s   target ≥ 20,000")
    print(f"raw Postgres COPY, same database:       {copy_rate:>9,.0f} rows/s")
    print(f"batch latency p50 / p99 (phase 1):      {ms([x * 1000 for x in load1['latencies']])}")
    print(f"freshness at {achieved:,.0f} events/s (phase 2), p50 / p99, target p99 < 1,000 ms:")
    print(f"  sent → visible on /analytics/real-time   {ms(probe2['realtime'])}   ({len(probe2['realtime'])} probes)")
    print(f"  sent → pushed on the SSE stream          {ms(probe2['sse'])}   ({len(probe2['sse'])} of {probe2['sent']})")
    print(f"  accepted → visible on /real-time         {ms(probe2['accepted_realtime'])}")
    print(f"  accepted → pushed on SSE                 {ms(probe2['accepted_sse'])}")
    print(f"freshness while saturated (phase 1):   real-time {ms(probe1['realtime'])}, SSE {ms(probe1['sse'])}")
    print(f"summary (Postgres) caught up {drain_s:.1f} s after the load stopped")
    events_1 = max(load1["window_accepted"], 1)
    per_event = {k: v / events_1 * 1e6 for k, v in load1["cpu"].items()}
    stack = sum(v for k, v in per_event.items() if k not in ("load generator", "bench (probe)"))
    print("CPU per accepted event in phase 1: " + ", ".join(f"{k} {v:.1f} µs" for k, v in per_event.items()))
    print(f"  the stack itself: {stack:.1f} µs/event → about {os.cpu_count() * 1e6 / stack:,.0f} events/s on "
          f"{os.cpu_count()} otherwise idle cores (clients elsewhere)")
    print()
    lost = sent - rows
    checks = {
        "every unique event recorded once (rows == sent)": rows == sent,
        "accepted == unique sent": load["accepted"] + probe["sent"] == sent,
        "duplicates reported == resent": load["duplicates"] == load["resent"],
        "no rejections or errors": load["rejected"] == 0 and load["errors"] == 0,
        "performance summary matches the generator": not perf_mismatch,
        "real-time counters match the generator": not live_mismatch,
    }
    print(f"events sent: {sent:,} unique (+{load['resent']:,} resent); recorded: {rows:,}; lost: {lost:,}")
    for name, ok in checks.items():
        print(f"  [{'ok' if ok else 'FAIL'}] {name}")
    if perf_mismatch or live_mismatch:
        print(f"  mismatches: summary {len(perf_mismatch)}, real-time {len(live_mismatch)}")
    if not args.data_dir:
        import shutil

        shutil.rmtree(data, ignore_errors=True)
    return 0 if all(checks.values()) else 1


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=30)
    p.add_argument("--warmup", type=float, default=5)
    p.add_argument("--clients", type=int, default=12)
    p.add_argument("--batch", type=int, default=2500)
    p.add_argument("--campaigns", type=int, default=1000)
    p.add_argument("--api-workers", type=int, default=2)
    p.add_argument("--duplicates", type=float, default=0.02, help="share of batches sent twice")
    p.add_argument("--probe-every", type=float, default=0.25)
    p.add_argument("--rate", type=float, default=20_000,
                   help="phase 2's events/s (at most 80%% of what phase 1 sustained)")
    p.add_argument("--copy-rows", type=int, default=200_000)
    p.add_argument("--data-dir", help="keep the stack's data here (default: a temporary directory)")
    args = p.parse_args()
    sys.exit(asyncio.run(run(args)))


if __name__ == "__main__":
    main()

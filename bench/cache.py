"""GET /api/campaigns/{id} on a Zipf workload over 10,000 campaigns: the two-tier cache's hit
rate, and a cached read's latency and throughput beside a bare HTTP round trip to the same
server, in the same run.

Campaigns are inserted straight into Postgres (a read benchmark needs rows, not 10,000
workflows); a fifth of them are active, and those are the most requested, as in life. The
API loads the active ones on start.

1. Hit rate: a first pass from start is reported as "cold"; the measured pass follows with
   the same distribution (`campaigns api`, one process, whose /metrics count every read).
2. One client at a time against `campaigns api --workers 2`: p50 and p99 of a cached read,
   and of `GET /healthz` on the same server (the reference: what any request costs there).
3. `--concurrency` clients (8) against the same server: reads a second, and the reference's.

The client is a minimal keep-alive HTTP/1.1 client (bench/rawhttp.py), so that the machine's
time goes to the server. Targets: hit rate at least 95 %; cached p50 under 3 ms and p99
under 15 ms with one client; at least 1,000 reads/s with 8 clients on `--workers 2`.

    .venv/bin/python -m bench.cache [--campaigns 10000] [--requests 50000] [--zipf 1.1] [--concurrency 8]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import time
import uuid

import numpy as np
import psutil

from bench.rawhttp import Connection
from bench.stack import embedded_stack, percentile
from campaigns import db
from campaigns.domain.config import CampaignConfiguration
from campaigns.domain.kpis import default_kpis


async def seed(database_url: str, organization_name: str, n: int, active_share: float, rng) -> list[str]:
    """Insert `n` campaigns of the organization; return their ids, most requested first."""
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        org_id = await pool.fetchval("SELECT id FROM organizations WHERE name = $1", organization_name)
        config = CampaignConfiguration(flow_id="flow-bench", knowledge_base_ids=["kb-faq"], timezone="Europe/Paris")
        config.kpis = default_kpis("outbound")
        document = config.model_dump(mode="json", by_alias=True)
        ids = [uuid.uuid4() for _ in range(n)]
        n_active = int(n * active_share)
        statuses = ["active"] * n_active + list(rng.choice(["draft", "paused", "ended"], size=n - n_active))
        rows = [
            (cid, org_id, "bench", f"Campaign {i}", None, status, "requested", "outbound", "phone", "Europe/Paris",
             document)
            for i, (cid, status) in enumerate(zip(ids, statuses, strict=True))
        ]
        async with pool.acquire() as conn, conn.transaction():
            await conn.executemany(
                """INSERT INTO campaigns (id, organization_id, user_id, name, description, status, status_reason,
                                          type, channel, timezone, config)
                   VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)""",
                rows,
            )
            await conn.executemany(
                "INSERT INTO campaign_performance (campaign_id, organization_id) VALUES ($1, $2)",
                [(cid, org_id) for cid in ids],
            )
        # Most requested first: the active campaigns in random order, then the others.
        head, tail = ids[:n_active], ids[n_active:]
        rng.shuffle(head)
        rng.shuffle(tail)
        return [str(i) for i in head + tail]
    finally:
        await pool.close()


def zipf_sequence(ranked: list[str], count: int, exponent: float, rng) -> list[str]:
    weights = np.arange(1, len(ranked) + 1, dtype=float) ** -exponent
    weights /= weights.sum()
    picks = rng.choice(len(ranked), size=count, p=weights)
    return [ranked[i] for i in picks]


async def replay(url: str, paths: list[str], concurrency: int, headers: dict[str, str]) -> tuple[list[float], float]:
    """GET each path, `concurrency` at a time; each request's seconds, and the total."""
    latencies: list[float] = []
    items = iter(paths)

    async def client() -> None:
        conn = await Connection.open(url)
        try:
            for path in items:
                t0 = time.perf_counter()
                status, body = await conn.request("GET", path, headers)
                latencies.append(time.perf_counter() - t0)
                assert status == 200, body[:300]
        finally:
            await conn.close()

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def lookups(url: str) -> dict[str, float]:
    conn = await Connection.open(url)
    try:
        _, body = await conn.request("GET", "/metrics")
    finally:
        await conn.close()
    found = re.findall(r'^campaign_cache_lookups_total\{source="(\w+)"\} ([0-9.e+]+)$', body.decode(), flags=re.M)
    return {source: float(value) for source, value in found}


def hit_rate(before: dict[str, float], after: dict[str, float]) -> tuple[float, dict[str, int]]:
    delta = {s: int(after.get(s, 0) - before.get(s, 0)) for s in ("local", "redis", "postgres")}
    total = sum(delta.values())
    return ((delta["local"] + delta["redis"]) / total if total else float("nan")), delta


def line(label: str, latencies: list[float], elapsed: float) -> tuple[float, float, float]:
    ms = [x * 1000 for x in latencies]
    p50, p99, rate = percentile(ms, 50), percentile(ms, 99), len(ms) / elapsed
    print(f"    {label:<26} p50 {p50:6.2f} ms   p99 {p99:6.2f} ms   {rate:7.0f} req/s", flush=True)
    return p50, p99, rate


def cpu_seconds(stack, names: dict[str, str]) -> dict[str, float]:
    """CPU time used so far by each piece (a process and its children; this process alone)."""
    pids = {c.spec.name: c.process.pid for c in stack.supervisor.children if c.process}
    out = {}
    for label, name in names.items():
        pid = os.getpid() if name == "self" else pids[name]
        total = 0.0
        root = psutil.Process(pid)
        for proc in [root, *(root.children(recursive=True) if name != "self" else [])]:
            try:
                times = proc.cpu_times()
                total += times.user + times.system
            except psutil.Error:
                pass
        out[label] = total
    return out


def cpu_line(before: dict[str, float], after: dict[str, float], requests: int) -> None:
    per = {k: (after[k] - before[k]) / requests * 1000 for k in before}
    total = sum(per.values())
    parts = ", ".join(f"{k} {v:.3f}" for k, v in per.items())
    print(f"      CPU per request (ms): {parts}; all {total:.3f} -> at most {os.cpu_count() * 1000 / total:,.0f}/s "
          f"on {os.cpu_count()} idle cores", flush=True)


def verdict(ok: bool) -> str:
    return "met" if ok else "NOT met"


async def main(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(7)
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start", flush=True)
    async with embedded_stack(temporal_in_memory=True) as stack:
        org = f"bench-{uuid.uuid4().hex[:6]}"
        key = await stack.api_key(org)
        headers = {"Authorization": f"Bearer {key}"}
        ranked = await seed(stack.settings.database_dsn, org, args.campaigns, args.active_share, rng)
        single = await stack.start_api()
        served = await stack.start_api(workers=2)
        await asyncio.sleep(3)  # let both load the active campaigns
        print(f"GET /api/campaigns/{{id}}: {args.campaigns} campaigns ({args.active_share:.0%} active, loaded on "
              f"start), Zipf s={args.zipf}, over HTTP", flush=True)

        cold = zipf_sequence(ranked, args.requests, args.zipf, rng)
        measured = zipf_sequence(ranked, args.requests, args.zipf, rng)
        paths = {c: f"/api/campaigns/{c}" for c in ranked}
        start = await lookups(single)
        await replay(single, [paths[c] for c in cold], args.concurrency, headers)
        middle = await lookups(single)
        cold_rate, _ = hit_rate(start, middle)
        await replay(single, [paths[c] for c in measured], args.concurrency, headers)
        rate, delta = hit_rate(middle, await lookups(single))
        print(f"  hit rate: cold pass {cold_rate:.1%}, measured pass {rate:.1%} {delta}  "
              f"(target >= 95 %: {verdict(rate >= 0.95)})", flush=True)

        # The server under test has served the same distribution (both its processes warm).
        await replay(served, [paths[c] for c in cold], args.concurrency, headers)
        alone = [paths[c] for c in measured[-args.single_requests:]]
        print(f"  one client at a time, campaigns api --workers 2, {len(alone)} requests each:", flush=True)
        await replay(served, ["/healthz"] * 500, 1, {})
        p50, p99, _ = line("cached GET", *(await replay(served, alone, 1, headers)))
        line("bare round trip (/healthz)", *(await replay(served, ["/healthz"] * len(alone), 1, {})))
        print(f"    targets p50 < 3 ms: {verdict(p50 < 3)}; p99 < 15 ms: {verdict(p99 < 15)}", flush=True)

        many = [paths[c] for c in measured[: args.throughput_requests]]
        print(f"  {args.concurrency} clients, campaigns api --workers 2, {len(many)} requests each:", flush=True)
        port = served.rsplit(":", 1)[1]
        pieces = {"api": f"api-{port}", "redis": "redis", "postgres": "postgres", "client": "self"}
        before = cpu_seconds(stack, pieces)
        _, _, reads = line("cached GET", *(await replay(served, many, args.concurrency, headers)))
        cpu_line(before, cpu_seconds(stack, pieces), len(many))
        before = cpu_seconds(stack, pieces)
        line("bare round trip (/healthz)", *(await replay(served, ["/healthz"] * len(many), args.concurrency, {})))
        cpu_line(before, cpu_seconds(stack, pieces), len(many))
        print(f"    target >= 1,000 reads/s: {verdict(reads >= 1000)}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=50_000, help="per hit-rate pass")
    parser.add_argument("--zipf", type=float, default=1.1)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--active-share", type=float, default=0.2)
    parser.add_argument("--single-requests", type=int, default=3_000)
    parser.add_argument("--throughput-requests", type=int, default=20_000)
    asyncio.run(main(parser.parse_args()))

"""10,000 SSE viewers over 100 campaigns while events arrive at 1,000/s: how late each viewer
sees a change, the API's memory, and whether any viewer is dropped.

Starts the embedded stack and `campaigns api --workers N`, makes 100 campaigns in 10
organizations (inserted straight into Postgres), and sends `cost` events of amount 1 over
HTTP at `--rate` a second, spread evenly over the campaigns, so that a campaign's
`todayCost` counts its events. Viewers are streams of `GET …/analytics/stream`, opened by
`--client-processes` processes with a minimal HTTP client (bench/rawhttp.py).

A viewer's update latency, for each frame it receives, is the time from sending the oldest
event the frame shows to it for the first time, to the frame's arrival: the longest any
event waited to reach that viewer.

1. Reference: one viewer per campaign (100), the same event rate: the latency of the path
   itself (ingest, counters, pub/sub, the hub's tick, one socket write).
2. `--viewers` (10,000) viewers, the same rate: latency p50/p99, the API's resident memory
   (every process), viewers connected and dropped.

Targets: update latency p99 < 2 s, API RSS < 1 GB, no viewer dropped.

    .venv/bin/python -m bench.viewers [--viewers 10000] [--campaigns 100] [--rate 1000] [--duration 30]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import re
import resource
import time
import uuid
from array import array

import orjson
import psutil

from bench.rawhttp import Connection
from bench.stack import embedded_stack, percentile
from campaigns import db
from campaigns.auth.service import create_key
from campaigns.domain.config import CampaignConfiguration

_COST = re.compile(rb'"todayCost":([0-9.eE+-]+)')


def raise_fd_limit() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def seed(database_url: str, n_campaigns: int, n_orgs: int) -> list[tuple[str, str]]:
    """(campaign id, its organization's API key) for each campaign."""
    pool = await db.create_pool(database_url, min_size=1, max_size=2)
    try:
        keys, out = [], []
        for _ in range(n_orgs):
            key, record = await create_key(pool, organization=f"viewers-{uuid.uuid4().hex[:6]}")
            keys.append((key, record["organization_id"]))
        document = CampaignConfiguration(flow_id="flow-bench", timezone="UTC").model_dump(mode="json", by_alias=True)
        async with pool.acquire() as conn, conn.transaction():
            for i in range(n_campaigns):
                key, org = keys[i % n_orgs]
                cid = uuid.uuid4()
                await conn.execute(
                    "INSERT INTO campaigns (id, organization_id, user_id, name, status, type, channel, timezone, config)"
                    " VALUES ($1, $2, 'bench', $3, 'active', 'outbound', 'phone', 'UTC', $4)",
                    cid, org, f"Viewers {i}", document,
                )
                await conn.execute(
                    "INSERT INTO campaign_performance (campaign_id, organization_id) VALUES ($1, $2)", cid, org
                )
                out.append((str(cid), key))
        return out
    finally:
        await pool.close()


# --- Viewers, in client processes ----------------------------------------------------------


def viewers_process(url: str, streams: list[tuple[int, str, str]], started, stop, results) -> None:
    """Open `streams` ((campaign index, campaign id, key)), report when all are open, read
    frames until told to stop; send back (campaign index, first unseen count, arrival) per
    frame, and how many streams ended early."""
    raise_fd_limit()
    asyncio.run(_viewers(url, streams, started, stop, results))


async def _viewers(url, streams, started, stop, results) -> None:
    campaign_of, first_unseen, arrivals = array("i"), array("i"), array("d")
    dropped = [0]
    opened = [0]
    gate = asyncio.Semaphore(100)  # connections being opened at once

    async def viewer(index: int, cid: str, key: str) -> None:
        try:
            async with gate:
                conn = await Connection.open(url)
        except OSError:
            dropped[0] += 1
            return
        seen = -1
        tail = b""
        try:
            await conn.open_stream(f"/api/campaigns/{cid}/analytics/stream", {"Authorization": f"Bearer {key}"})
            # Blocks as they come, framing and all: the newest todayCost in a block is what
            # this viewer has seen by then (a frame cut across two blocks is read with the next).
            while block := await conn.reader.read(65536):
                data = tail + block
                found = _COST.findall(data)
                tail = data[data.rfind(b"\n") + 1 :]
                if not found:
                    continue
                value = round(float(found[-1]))
                if seen < 0:
                    seen = value
                    opened[0] += 1
                elif value > seen:
                    campaign_of.append(index)
                    first_unseen.append(seen + 1)
                    arrivals.append(time.time())
                    seen = value
            dropped[0] += 1  # the server ended the stream
        except (ConnectionError, OSError, asyncio.IncompleteReadError, RuntimeError):
            dropped[0] += 1
        finally:
            await conn.close()

    tasks = [asyncio.create_task(viewer(i, cid, key)) for i, cid, key in streams]
    while opened[0] + dropped[0] < len(streams):
        await asyncio.sleep(0.2)
    started.put(opened[0])
    while not stop.is_set():
        await asyncio.sleep(0.2)
    still_open = sum(1 for t in tasks if not t.done())
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    results.put((campaign_of.tobytes(), first_unseen.tobytes(), arrivals.tobytes(), dropped[0], still_open))


# --- Events ----------------------------------------------------------------------------


class Sender:
    """`cost` events of amount 1, evenly over the campaigns; when each campaign's k-th was sent."""

    def __init__(self, url: str, campaigns: list[tuple[str, str]], rate: float) -> None:
        self.url = url
        self.campaigns = campaigns
        self.rate = rate
        self.sent: list[list[float]] = [[0.0] for _ in campaigns]  # sent[c][k]: when the k-th event left
        self.answered: list[float] = []  # how long each POST took
        self.by_key: dict[str, list[int]] = {}
        for i, (_, key) in enumerate(campaigns):
            self.by_key.setdefault(key, []).append(i)

    async def run(self, stop: asyncio.Event) -> None:
        """Every 0.1 s, one batch per organization, sent without waiting for the previous
        answers (events arrive at the rate, however long the API takes to answer)."""
        idle: dict[str, list[Connection]] = {key: [] for key in self.by_key}
        pending: set[asyncio.Task] = set()
        period = 0.1
        per_tick = self.rate * period  # events a tick, over all campaigns
        carry, n = 0.0, 0
        next_at = time.monotonic()
        try:
            while not stop.is_set():
                carry += per_tick
                count, carry = int(carry), carry - int(carry)
                picks = [(n + j) % len(self.campaigns) for j in range(count)]
                n += count
                by_key: dict[str, list[int]] = {}
                for i in picks:
                    by_key.setdefault(self.campaigns[i][1], []).append(i)
                for key, indices in by_key.items():
                    task = asyncio.create_task(self._send(idle[key], key, indices))
                    pending.add(task)
                    task.add_done_callback(pending.discard)
                next_at += period
                await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            await asyncio.gather(*pending)
        finally:
            for conns in idle.values():
                for conn in conns:
                    await conn.close()

    async def _send(self, idle: list[Connection], key: str, indices: list[int]) -> None:
        conn = idle.pop() if idle else await Connection.open(self.url)
        now = time.time()
        events = [
            {"id": uuid.uuid4().hex, "campaignId": self.campaigns[i][0], "type": "cost",
             "occurredAt": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now)),
             "data": {"amount": 1, "category": "llm"}}
            for i in indices
        ]
        for i in indices:
            self.sent[i].append(now)
        body = orjson.dumps({"events": events})
        try:
            status, answer = await conn.request("POST", "/api/events", {"Authorization": f"Bearer {key}"}, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            # An idle connection the server closed (keep-alive timeout): the same events again
            # (their ids make it safe) on a new one.
            await conn.close()
            conn = await Connection.open(self.url)
            status, answer = await conn.request("POST", "/api/events", {"Authorization": f"Bearer {key}"}, body)
        assert status == 200, answer[:300]
        self.answered.append(time.time() - now)
        idle.append(conn)


def cpu_seconds(stack, procs) -> dict[str, float]:
    """CPU time used so far: the API processes, Redis and Postgres, this process (the
    sender), and the viewers' processes."""
    out: dict[str, float] = {}
    groups = {c.spec.name: c.process.pid for c in stack.supervisor.children if c.process}
    named = {"api": [p for n, p in groups.items() if n.startswith("api-")], "redis": [groups["redis"]],
             "postgres": [groups["postgres"]], "viewers": [p.pid for p in procs]}
    for label, pids in named.items():
        total = 0.0
        for pid in pids:
            try:
                root = psutil.Process(pid)
                for proc in [root, *root.children(recursive=True)]:
                    times = proc.cpu_times()
                    total += times.user + times.system
            except psutil.Error:
                pass
        out[label] = total
    times = psutil.Process().cpu_times()
    out["sender"] = times.user + times.system
    return out


def api_rss(stack) -> float:
    """Resident memory of every API process (MB)."""
    total = 0
    for child in stack.supervisor.children:
        if child.spec.name.startswith("api-") and child.process:
            root = psutil.Process(child.process.pid)
            for proc in [root, *root.children(recursive=True)]:
                try:
                    total += proc.memory_info().rss
                except psutil.Error:
                    pass
    return total / 2**20


async def phase(stack, url: str, campaigns, sender: Sender, n_viewers: int, processes: int, duration: float,
                label: str) -> dict:
    ctx = mp.get_context("spawn")
    started, results, stop = ctx.Queue(), ctx.Queue(), ctx.Event()
    streams = [(i % len(campaigns), campaigns[i % len(campaigns)][0], campaigns[i % len(campaigns)][1])
               for i in range(n_viewers)]
    shares = [streams[p::processes] for p in range(processes)]
    procs = [ctx.Process(target=viewers_process, args=(url, share, started, stop, results)) for share in shares]
    for p in procs:
        p.start()
    t0 = time.monotonic()
    opened = 0
    for _ in procs:
        opened += await asyncio.to_thread(started.get, True, 600)
    print(f"  {label}: {opened}/{n_viewers} viewers connected in {time.monotonic() - t0:.1f} s; "
          f"API RSS {api_rss(stack):.0f} MB before events", flush=True)
    events_before = sum(len(x) - 1 for x in sender.sent)
    answers_before = len(sender.answered)
    halt = asyncio.Event()
    sending = asyncio.create_task(sender.run(halt))
    peak_rss = 0.0
    cpu_before = cpu_seconds(stack, procs)
    end = time.monotonic() + duration
    while time.monotonic() < end:
        await asyncio.sleep(1)
        peak_rss = max(peak_rss, api_rss(stack))
    cpu = {k: v - cpu_before[k] for k, v in cpu_seconds(stack, procs).items()}
    halt.set()
    await sending
    await asyncio.sleep(3)  # the last frames
    stop.set()
    latencies: list[float] = []
    dropped = still_open = 0
    for _ in procs:
        raw_c, raw_k, raw_t, lost, alive = await asyncio.to_thread(results.get, True, 600)
        dropped += lost
        still_open += alive
        cs, ks, ts = array("i"), array("i"), array("d")
        cs.frombytes(raw_c)
        ks.frombytes(raw_k)
        ts.frombytes(raw_t)
        for c, k, t in zip(cs, ks, ts, strict=True):
            sent = sender.sent[c]
            if k < len(sent):
                latencies.append(t - sent[k])
    for p in procs:
        p.join(30)
    events = sum(len(x) - 1 for x in sender.sent) - events_before
    ms = [x * 1000 for x in latencies]
    print(f"    {events} events sent ({events / duration:.0f}/s); {len(ms)} updates received; latency p50 "
          f"{percentile(ms, 50):.0f} ms, p99 {percentile(ms, 99):.0f} ms, max {max(ms, default=0):.0f} ms; "
          f"API RSS peak {peak_rss:.0f} MB; viewers dropped {dropped}, open at the end {still_open}/{n_viewers}",
          flush=True)
    posts = [x * 1000 for x in sender.answered[answers_before:]]
    print(f"    POST /api/events answered in p50 {percentile(posts, 50):.0f} ms, p99 {percentile(posts, 99):.0f} ms",
          flush=True)
    print("    CPU, cores busy on average: " + ", ".join(f"{k} {v / duration:.2f}" for k, v in cpu.items())
          + f"; API CPU per update received {cpu['api'] / max(len(ms), 1) * 1e6:.0f} us", flush=True)
    return {"p99": percentile(ms, 99), "rss": peak_rss, "dropped": dropped, "opened": opened}


async def main(args: argparse.Namespace) -> None:
    limit = raise_fd_limit()
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f}; file descriptors {limit}",
          flush=True)
    async with embedded_stack(temporal_in_memory=True) as stack:
        stack.env = {**stack.env, "STREAM_TICK_S": str(args.tick)} if args.tick else stack.env
        campaigns = await seed(stack.settings.database_dsn, args.campaigns, args.organizations)
        url = await stack.start_api(workers=args.workers)
        print(f"SSE viewers of {args.campaigns} campaigns, events at {args.rate:.0f}/s, campaigns api --workers "
              f"{args.workers}", flush=True)
        # One sender for both phases: a campaign's k-th event is the one its todayCost counts k-th.
        sender = Sender(url, campaigns, args.rate)
        await phase(stack, url, campaigns, sender, args.campaigns, 1, args.reference_duration,
                    f"reference, one viewer per campaign ({args.campaigns})")
        result = await phase(stack, url, campaigns, sender, args.viewers, args.client_processes, args.duration,
                             f"{args.viewers} viewers")
        print(f"  targets: latency p99 < 2 s {'met' if result['p99'] < 2000 else 'NOT met'}; API RSS < 1 GB "
              f"{'met' if result['rss'] < 1024 else 'NOT met'}; no viewer dropped "
              f"{'met' if result['dropped'] == 0 and result['opened'] == args.viewers else 'NOT met'}", flush=True)
    print(f"load average {os.getloadavg()[0]:.2f} at the end", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--viewers", type=int, default=10_000)
    parser.add_argument("--campaigns", type=int, default=100)
    parser.add_argument("--organizations", type=int, default=10)
    parser.add_argument("--rate", type=float, default=1000, help="events a second")
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--reference-duration", type=float, default=10)
    parser.add_argument("--workers", type=int, default=2, help="API processes")
    parser.add_argument("--client-processes", type=int, default=2)
    parser.add_argument("--tick", type=float, default=None, help="STREAM_TICK_S for the API (default: its own)")
    asyncio.run(main(parser.parse_args()))

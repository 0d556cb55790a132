"""Campaign-create latency and throughput over HTTP at 20 concurrent clients, beside the
raw `start_workflow` throughput of the same Temporal server, in the same run.

Targets: p99 under 200 ms; create throughput at least half the raw start throughput.

    .venv/bin/python bench/create.py [--n 1000] [--concurrency 20]
"""

from __future__ import annotations

import argparse
import asyncio
import time
import uuid

import httpx
from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy

from bench.stack import embedded_stack, percentile
from campaigns import temporal


@workflow.defn(sandboxed=False)
class Noop:
    """Started, never run: only the server's start path is measured."""

    @workflow.run
    async def run(self) -> None:
        return None


async def run_concurrently(n: int, concurrency: int, one) -> tuple[list[float], float]:
    latencies: list[float] = []
    queue = iter(range(n))

    async def client() -> None:
        for i in queue:
            t0 = time.perf_counter()
            await one(i)
            latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return latencies, time.perf_counter() - started


async def main(n: int, concurrency: int) -> None:
    async with embedded_stack() as stack:
        await stack.start_worker()
        url = await stack.start_api()
        key = await stack.api_key()
        body = {"name": "Bench", "type": "outbound", "channel": "phone", "flowId": "f", "timezone": "Europe/Paris",
                "goals": [{"type": "leads", "target": 100}], "budget": {"total": 1000}}
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                     timeout=30) as http:

            async def create(_: int) -> None:
                r = await http.post("/api/campaigns", json=body)
                assert r.status_code == 201, r.text

            await run_concurrently(min(100, n), concurrency, create)  # warm-up
            lat, elapsed = await run_concurrently(n, concurrency, create)

        client = await temporal.connect(stack.settings)
        prefix = uuid.uuid4().hex[:8]

        async def start(i: int) -> None:
            await client.start_workflow(Noop.run, id=f"raw-{prefix}-{i}", task_queue="bench-raw",
                                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)

        await run_concurrently(min(100, n), concurrency, lambda i: start(n + i))  # warm-up
        raw_lat, raw_elapsed = await run_concurrently(n, concurrency, start)

    create_rate, raw_rate = n / elapsed, n / raw_elapsed
    ms = [x * 1000 for x in lat]
    print(f"campaign create over HTTP, {n} requests, {concurrency} concurrent clients (embedded stack, Temporal on SQLite)")
    print(f"  latency p50 {percentile(ms, 50):.1f} ms   p99 {percentile(ms, 99):.1f} ms   max {max(ms):.1f} ms"
          f"   (target p99 < 200 ms: {'met' if percentile(ms, 99) < 200 else 'NOT met'})")
    print(f"  throughput {create_rate:.0f} creates/s")
    print(f"raw start_workflow, same server, {concurrency} concurrent: {raw_rate:.0f} starts/s "
          f"(p50 {percentile([x * 1000 for x in raw_lat], 50):.1f} ms)")
    ratio = create_rate / raw_rate
    print(f"  create / raw = {ratio:.2f}   (target >= 0.5: {'met' if ratio >= 0.5 else 'NOT met'})")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency))

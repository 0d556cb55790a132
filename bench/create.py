"""Campaign create and activation latency over HTTP at 20 concurrent clients, printed
beside the raw `start_workflow` rate of the same Temporal server, in the same run.

A create is one Postgres transaction (a draft has no workflow yet); an activation starts
the campaign's workflow (update-with-start) and waits until the workflow has persisted
the change. Targets: create p99 < 50 ms; activation p99 < 500 ms. Activations are measured
twice: by 20 clients as fast as they go (throughput-bound: latency is 20 / rate), and at a
steady rate of `--rate` a second (latency with the platform below saturation).

    .venv/bin/python -m bench.create [--n 1000] [--concurrency 20] [--api-workers 2]

It also prints the CPU each process spent per create and per activation, so that a figure
measured on a busy machine can be read.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import time
import uuid
from collections import Counter

import httpx
from temporalio import workflow
from temporalio.common import WorkflowIDReusePolicy

from bench.stack import cpu_seconds, embedded_stack, percentile
from campaigns import temporal

CREATE_P99_MS = 50
ACTIVATE_P99_MS = 500


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


async def run_at_rate(n: int, rate: float, one) -> tuple[list[float], float]:
    """`n` calls started at a steady `rate` a second, whatever the answers' latency (open loop)."""
    latencies: list[float] = []

    async def timed(i: int) -> None:
        t0 = time.perf_counter()
        await one(i)
        latencies.append(time.perf_counter() - t0)

    started = time.perf_counter()
    tasks = []
    for i in range(n):
        await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
        tasks.append(asyncio.create_task(timed(i)))
    await asyncio.gather(*tasks)
    return latencies, time.perf_counter() - started


def line(name: str, latencies: list[float], elapsed: float, target_ms: float | None = None) -> str:
    ms = [x * 1000 for x in latencies]
    p99 = percentile(ms, 99)
    verdict = f"   (target p99 < {target_ms:g} ms: {'met' if p99 < target_ms else 'NOT met'})" if target_ms else ""
    return (f"  {name:<22} p50 {percentile(ms, 50):6.1f} ms   p99 {p99:6.1f} ms   max {max(ms):6.1f} ms   "
            f"{len(ms) / elapsed:5.0f}/s{verdict}")


def cpu_line(name: str, spent: dict[str, float], count: int) -> str:
    return f"    CPU per {name}: " + ", ".join(f"{p} {s / count * 1000:.1f} ms" for p, s in spent.items())


async def main(n: int, concurrency: int, api_workers: int, rate: float) -> None:
    async with embedded_stack() as stack:
        await stack.start_worker()
        url = await stack.start_api(workers=api_workers)
        key = await stack.api_key()
        pids = stack.pids()
        body = {"name": "Bench", "type": "outbound", "channel": "phone", "flowId": "f", "timezone": "Europe/Paris",
                "goals": [{"type": "leads", "target": 100}], "budget": {"total": 1000}}
        # Idle connections are dropped before the server's keep-alive timeout (5 s) closes them.
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency, keepalive_expiry=2)
        ids: list[str] = []
        codes: Counter[int] = Counter()  # answers to the activations of the current run
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                     timeout=30) as http:

            async def create(_: int) -> None:
                r = await http.post("/api/campaigns", json=body)
                assert r.status_code == 201, r.text
                ids.append(r.json()["campaign"]["id"])

            async def activate(i: int) -> None:
                r = await http.post(f"/api/campaigns/{ids[i]}/activate")
                assert r.status_code in (200, 202), r.text
                codes[r.status_code] += 1

            await run_concurrently(min(100, n), concurrency, create)  # warm-up
            await run_concurrently(min(100, n), concurrency, activate)
            warm = len(ids)
            before = cpu_seconds(pids)
            create_lat, create_elapsed = await run_concurrently(n, concurrency, create)
            between = cpu_seconds(pids)
            codes.clear()
            activate_lat, activate_elapsed = await run_concurrently(n, concurrency, lambda i: activate(warm + i))
            after = cpu_seconds(pids)
            closed_codes = Counter(codes)
            steady = int(rate * 20)  # 20 seconds' worth
            await run_concurrently(steady, concurrency, create)
            codes.clear()
            paced_lat, paced_elapsed = await run_at_rate(steady, rate, lambda i: activate(warm + n + i))

        client = await temporal.connect(stack.settings)
        prefix = uuid.uuid4().hex[:8]

        async def start(i: int) -> None:
            await client.start_workflow(Noop.run, id=f"raw-{prefix}-{i}", task_queue="bench-raw",
                                        id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE)

        await run_concurrently(min(100, n), concurrency, lambda i: start(n + i))  # warm-up
        raw_lat, raw_elapsed = await run_concurrently(n, concurrency, start)

    load = os.getloadavg()
    print(f"campaigns over HTTP, {n} of each, {concurrency} concurrent clients, {api_workers} API process(es) "
          f"(embedded stack, Temporal on SQLite; {os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} "
          f"{load[2]:.2f})")
    print(line("create (a draft)", create_lat, create_elapsed, CREATE_P99_MS))
    print(cpu_line("create", {p: between[p] - before[p] for p in pids}, n))
    print(line("activate", activate_lat, activate_elapsed, ACTIVATE_P99_MS))
    print(cpu_line("activation", {p: after[p] - between[p] for p in pids}, n))
    print(f"    activations answered: {dict(sorted(closed_codes.items()))} (202: accepted, applied after the wait)")
    print(line(f"activate at {rate:g}/s", paced_lat, paced_elapsed, ACTIVATE_P99_MS))
    print(f"    activations answered: {dict(sorted(codes.items()))}")
    print(line("raw start_workflow", raw_lat, raw_elapsed))
    print(f"  activations / raw starts = {(n / activate_elapsed) / (n / raw_elapsed):.2f}"
          "   (an activation is a start, an update and a Postgres write)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--api-workers", type=int, default=2, help="API processes (uvicorn workers); default 2")
    parser.add_argument("--rate", type=float, default=10, help="activations a second in the steady run")
    args = parser.parse_args()
    asyncio.run(main(args.n, args.concurrency, args.api_workers, args.rate))

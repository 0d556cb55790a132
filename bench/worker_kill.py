"""Status changes while the worker is killed: requests by answer and latency percentiles.

Status changes (pause, resume) go to a few hundred active campaigns at a steady rate. Ten
seconds in, the only worker is killed with SIGKILL and a new one is started shortly after,
as a supervisor would (the bench prints when it polled again). The requests made before
the kill are the reference; those made in the ten seconds after it show what the kill
costs. Every answer is one of: 200 (applied), 202 (accepted, applied later: the bench reports
how long after it was made its record says it was applied or refused), 409 (refused) or 503
(not recorded). Target: p99 < 5 s and no 503 once a new worker is up within 2 s.

    .venv/bin/python -m bench.worker_kill [--campaigns 200] [--rate 20] [--duration 30] [--restart-after 0.5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import sys
import time
import uuid
from collections import Counter
from dataclasses import dataclass

import httpx

from bench.stack import embedded_stack, percentile
from campaigns import db
from campaigns.stack import services

P99_TARGET_S = 5.0


@dataclass
class Answer:
    sent: float  # seconds since the run began
    status: int
    latency: float
    request_id: str | None = None  # a 202's pending request
    applied_after: float | None = None  # a 202's: from its request until it was applied or refused


async def eventually_exists(path) -> None:
    """Until another process has written `path` (there is nothing to wait on but the file)."""
    while not path.exists():  # noqa: ASYNC110
        await asyncio.sleep(0.05)


def summary(name: str, answers: list[Answer]) -> str:
    if not answers:
        return f"  {name}: none"
    lat = [a.latency for a in answers]
    codes = dict(sorted(Counter(a.status for a in answers).items()))
    return (f"  {name:<28} {len(answers):4d} requests {codes}   p50 {percentile(lat, 50):5.2f} s   "
            f"p99 {percentile(lat, 99):5.2f} s   max {max(lat):5.2f} s")


async def main(
    campaigns: int, rate: float, duration: float, kill_at: float, restart_after: float, logs: str | None
) -> None:
    async with embedded_stack() as stack:
        # The worker touches its health file once it polls: that is when it is up.
        health = stack.settings.data_dir / "worker-up"
        worker_spec = services.ServiceSpec(
            name="worker", argv=[sys.executable, "-m", "campaigns.cli", "worker"],
            env={**stack.env, "WORKER_HEALTH_FILE": str(health)},
            log_file=stack.settings.data_dir / "logs" / "worker.log",
        )
        worker = await stack.supervisor.start(worker_spec)
        url = await stack.start_api(workers=2)
        key = await stack.api_key()
        # Idle connections are dropped before the server's keep-alive timeout (5 s) closes them.
        limits = httpx.Limits(max_connections=200, max_keepalive_connections=200, keepalive_expiry=2)
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {key}"}, limits=limits,
                                     timeout=60) as http:
            body = {"name": "Kill", "type": "outbound", "channel": "phone", "flowId": "f"}
            ids = []
            for _ in range(campaigns):
                ids.append((await http.post("/api/campaigns", json=body)).json()["campaign"]["id"])
            sem = asyncio.Semaphore(20)

            async def activate(cid: str) -> None:
                async with sem:
                    r = await http.post(f"/api/campaigns/{cid}/activate")
                    assert r.status_code in (200, 202), r.text

            await asyncio.gather(*(activate(c) for c in ids))
            while True:  # a 202 above is applied shortly after
                listed = await http.get("/api/campaigns", params={"status": "active", "limit": 1})
                if listed.json()["total"] == campaigns:
                    break
                await asyncio.sleep(0.5)
            print(f"{campaigns} active campaigns; {rate:g} status changes a second for {duration:g} s; "
                  f"worker killed at {kill_at:g} s and restarted {restart_after:g} s later", flush=True)

            answers: list[Answer] = []
            wanted = dict.fromkeys(ids, "active")
            started = time.perf_counter()

            async def change(cid: str) -> None:
                target = "paused" if wanted[cid] == "active" else "active"
                wanted[cid] = target
                sent = time.perf_counter()
                try:
                    r = await http.post(f"/api/campaigns/{cid}/{'pause' if target == 'paused' else 'resume'}")
                except httpx.TransportError as err:  # reported as status 0: no answer at all
                    answers.append(Answer(sent - started, 0, time.perf_counter() - sent))
                    print(f"  no answer: {err!r}", flush=True)
                    return
                answer = Answer(sent - started, r.status_code, time.perf_counter() - sent)
                answers.append(answer)
                if r.status_code == 202:
                    answer.request_id = r.json()["campaign"]["pendingStatusChange"]["requestId"]

            up_after: float | None = None

            async def kill_and_restart() -> None:
                nonlocal worker, up_after
                await asyncio.sleep(kill_at)
                assert worker.process is not None
                worker.process.send_signal(signal.SIGKILL)
                await worker.process.wait()
                killed = time.perf_counter()
                health.unlink(missing_ok=True)
                await asyncio.sleep(restart_after)
                worker = await stack.supervisor.start(worker_spec)
                await eventually_exists(health)
                up_after = time.perf_counter() - killed

            killer = asyncio.create_task(kill_and_restart())
            tasks = []
            for i in range(int(rate * duration)):
                await asyncio.sleep(max(0.0, started + i / rate - time.perf_counter()))
                tasks.append(asyncio.create_task(change(ids[i % len(ids)])))
            await asyncio.gather(*tasks, killer)
            # What became of the 202s, read from the requests' records (polling the API for
            # hundreds of them would load the very processes being measured).
            pool = await db.create_pool(stack.settings.database_dsn, min_size=1, max_size=2)
            try:
                pending = [uuid.UUID(a.request_id) for a in answers if a.request_id]
                deadline = time.perf_counter() + 120
                while time.perf_counter() < deadline:  # noqa: ASYNC110 - another process resolves them
                    rows = await pool.fetch(
                        "SELECT id, state, resolved_at - requested_at AS took FROM status_requests WHERE id = ANY($1)",
                        pending,
                    )
                    if all(r["state"] != "pending" for r in rows):
                        break
                    await asyncio.sleep(1)
                took = {str(r["id"]): r["took"].total_seconds() for r in rows if r["state"] != "pending"}
                for a in answers:
                    if a.request_id in took:
                        a.applied_after = took[a.request_id]
            finally:
                await pool.close()
        if logs:
            shutil.copytree(stack.settings.data_dir / "logs", logs, dirs_exist_ok=True)

    load = os.getloadavg()
    before = [a for a in answers if a.sent < kill_at]
    around = [a for a in answers if kill_at <= a.sent < kill_at + 10]
    print(f"status changes over HTTP ({os.cpu_count()} CPUs, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}); "
          f"the new worker polled {up_after:.1f} s after the kill")
    print(summary("before the kill (reference)", before))
    print(summary("in the 10 s after the kill", around))
    print(summary("all", answers))
    p99 = percentile([a.latency for a in answers], 99)
    refused = sum(1 for a in answers if a.status == 503)
    print(f"  target p99 < {P99_TARGET_S:g} s and no 503: "
          f"{'met' if p99 < P99_TARGET_S and not refused else 'NOT met'}")
    late = [a.applied_after for a in answers if a.applied_after is not None]
    if late:
        print(f"  202s no longer pending (applied or refused) after p50 {percentile(late, 50):.2f} s, "
              f"max {max(late):.2f} s")
    stuck = sum(1 for a in answers if a.status == 202 and a.applied_after is None)
    if stuck:
        print(f"  {stuck} 202s still pending after 120 s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--campaigns", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20)
    parser.add_argument("--duration", type=float, default=30)
    parser.add_argument("--kill-at", type=float, default=10)
    parser.add_argument("--restart-after", type=float, default=0.5, help="seconds between the kill and the new start")
    parser.add_argument("--logs", help="copy the processes' logs to this directory")
    args = parser.parse_args()
    asyncio.run(main(args.campaigns, args.rate, args.duration, args.kill_at, args.restart_after, args.logs))

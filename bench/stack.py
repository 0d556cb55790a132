"""The embedded stack for benchmarks: the same pieces `campaigns run` starts (Temporal on
SQLite, Postgres, Redis, a worker and the API as separate processes), on free ports in a
temporary directory, so a benchmark measures what a user of `make run` gets."""

from __future__ import annotations

import os
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from campaigns import db  # noqa: E402
from campaigns.auth.service import create_key  # noqa: E402
from campaigns.settings import Settings  # noqa: E402
from campaigns.stack import services  # noqa: E402
from campaigns.stack.supervisor import Supervisor  # noqa: E402


@dataclass
class Stack:
    settings: Settings
    supervisor: Supervisor
    env: dict[str, str]

    async def start_worker(self, name: str = "worker") -> None:
        await self.supervisor.start(
            services.ServiceSpec(name=name, argv=[sys.executable, "-m", "campaigns.cli", "worker"], env=self.env,
                                 log_file=self.settings.data_dir / "logs" / f"{name}.log")
        )

    async def start_api(self, port: int | None = None, workers: int = 1) -> str:
        port = port or services.free_port()
        url = f"http://127.0.0.1:{port}"

        async def ready() -> None:
            async with httpx.AsyncClient(timeout=2) as c:
                (await c.get(url + "/readyz")).raise_for_status()

        await self.supervisor.start(
            services.ServiceSpec(
                name=f"api-{port}",
                argv=[sys.executable, "-m", "campaigns.cli", "api", "--port", str(port), "--workers", str(workers)],
                env=self.env, probe=ready, log_file=self.settings.data_dir / "logs" / f"api-{port}.log",
            )
        )
        return url

    def pids(self) -> dict[str, list[int]]:
        """Each piece's supervised processes (`cpu_seconds` adds the processes they started)."""
        out: dict[str, list[int]] = {}
        for child in self.supervisor.children:
            if child.process is None or child.process.returncode is not None:
                continue
            name = "api" if child.spec.name.startswith("api-") else child.spec.name
            out.setdefault(name, []).append(child.process.pid)
        return out

    async def api_key(self, org: str | None = None) -> str:
        pool = await db.create_pool(self.settings.database_dsn, min_size=1, max_size=2)
        try:
            key, _ = await create_key(pool, organization=org or f"bench-{uuid.uuid4().hex[:6]}")
            return key
        finally:
            await pool.close()


@asynccontextmanager
async def embedded_stack(*, temporal_in_memory: bool = False) -> AsyncIterator[Stack]:
    with tempfile.TemporaryDirectory(prefix="campaigns-bench-") as tmp:
        data = Path(tmp)
        sup = Supervisor(restart=False)
        try:
            pg, database_url = services.postgres(data, services.free_port())
            await sup.start(pg)
            rd, redis_url = services.redis(data, services.free_port())
            await sup.start(rd)
            tp, temporal_address = services.temporal(
                None if temporal_in_memory else data, services.free_port(), None, log_dir=data
            )
            await sup.start(tp)
            await db.migrate(database_url)
            settings = Settings(
                _env_file=None, data_dir=data, database_url=database_url, redis_url=redis_url,
                temporal_address=temporal_address, log_level="warning",
            )
            env = {
                **os.environ,
                "DATA_DIR": str(data),
                "DATABASE_URL": database_url,
                "REDIS_URL": redis_url,
                "TEMPORAL_ADDRESS": temporal_address,
                "LOG_LEVEL": "warning",
                "RATE_LIMIT_PER_SECOND": "0",  # benchmarks measure the platform, not the limiter
                "RATE_LIMIT_ORG_PER_SECOND": "0",
            }
            yield Stack(settings, sup, env)
        finally:
            await sup.stop()


def _children(pid: int) -> list[int]:
    """The processes `pid` started (uvicorn's workers, Postgres's backends), Linux only."""
    try:
        return [int(c) for c in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pids: dict[str, list[int]]) -> dict[str, float]:
    """User and system CPU each piece has used so far, with the processes it started (API
    workers, Postgres backends), Linux only (0 elsewhere). Processes that came and went
    meanwhile are not counted."""
    out = {}
    for name, group in pids.items():
        total = 0.0
        for pid in [*group, *(c for p in group for c in _children(p))]:  # one level: enough here
            try:
                fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            except (OSError, ValueError, IndexError):
                pass
        out[name] = total
    return out


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0–100) by nearest rank."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]

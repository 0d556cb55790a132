"""Start child processes in order, wait until each is ready, restart the ones that
crash, and stop them all in reverse order.

Children run in their own process group so that Ctrl-C reaches only the
supervisor, which then stops the API before the database it talks to.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from campaigns.stack.services import ServiceSpec, wait_until

log = logging.getLogger("campaigns.stack")

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """If the supervisor is killed outright, its children get SIGTERM instead of lingering."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def _open_log(path: Path) -> BinaryIO:
    path.parent.mkdir(parents=True, exist_ok=True)
    return open(path, "ab")  # noqa: SIM115 - handed to the child, closed once it is spawned


@dataclass
class Child:
    spec: ServiceSpec
    process: asyncio.subprocess.Process | None = None
    restarts: int = 0  # in a row: those that died soon after they started
    started_at: float = 0.0

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.returncode is None


class Supervisor:
    def __init__(self, *, restart: bool = True, stable_after_s: float = 30.0) -> None:
        self.children: list[Child] = []
        self.restart = restart
        # A child that ran this long before it exited was healthy: its restart pause starts over.
        self.stable_after_s = stable_after_s
        self._stopping = False
        self._watchers: list[asyncio.Task[None]] = []

    async def start(self, spec: ServiceSpec) -> Child:
        """Start a child and wait for its probe; raise if it never becomes ready."""
        child = Child(spec)
        self.children.append(child)
        if spec.prepare:
            await asyncio.to_thread(spec.prepare)
        await self._spawn(child)
        if spec.probe:
            await wait_until(spec.probe, spec.ready_timeout, spec.name, lambda: child.alive)
        self._watchers.append(asyncio.create_task(self._watch(child)))
        return child

    async def _spawn(self, child: Child) -> None:
        spec = child.spec
        out: BinaryIO | None = None
        if spec.log_file:
            # In a thread: restarts happen while the other children are being served.
            out = await asyncio.to_thread(_open_log, spec.log_file)
        env = {**os.environ, **spec.env}
        child.process = await asyncio.create_subprocess_exec(
            *spec.argv,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=out,
            stderr=asyncio.subprocess.STDOUT if spec.log_file else None,
            env=env,
            user=spec.user,
            start_new_session=True,
            preexec_fn=_die_with_parent,
        )
        child.started_at = asyncio.get_running_loop().time()
        if out is not None:
            out.close()  # the child holds its own copy of the descriptor
        log.info("started %s (pid %s)", spec.name, child.process.pid)

    async def _watch(self, child: Child) -> None:
        """Restart a child that exits on its own, with a growing pause between tries."""
        while True:
            assert child.process is not None
            code = await child.process.wait()
            if self._stopping or not self.restart:
                return
            # A child that crashes at once backs off further each time; one that had been
            # running a while is a fresh failure and comes back at once.
            if asyncio.get_running_loop().time() - child.started_at >= self.stable_after_s:
                child.restarts = 0
            child.restarts += 1
            delay = min(30.0, 0.5 * 2 ** min(child.restarts, 6))
            log.warning("%s exited with %s; restarting in %.1fs", child.spec.name, code, delay)
            await asyncio.sleep(delay)
            if self._stopping:
                return
            await self._spawn(child)

    async def wait(self) -> None:
        """Block until stop() is called (from a signal handler) or every child is gone."""
        await asyncio.gather(*self._watchers, return_exceptions=True)

    async def stop(self) -> None:
        """Stop the children, last started first; kill any that will not stop in time."""
        self._stopping = True
        for child in reversed(self.children):
            proc = child.process
            if proc is None or proc.returncode is not None:
                continue
            # PostgreSQL's SIGTERM waits for every client to leave; SIGINT is its fast shutdown.
            sig = signal.SIGINT if child.spec.name == "postgres" else signal.SIGTERM
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(sig)
            try:
                await asyncio.wait_for(proc.wait(), child.spec.stop_signal_timeout)
            except TimeoutError:
                log.warning("%s did not stop in time; killing it", child.spec.name)
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                await proc.wait()
        for task in self._watchers:
            task.cancel()

"""A Temporal dev server of a test's own, for fault tests: its state is in a file (so a
restart keeps every workflow), and the test can freeze it (SIGSTOP), thaw it and restart
it on the same port, leaving the session's server alone."""

from __future__ import annotations

import contextlib
import os
import signal
from pathlib import Path

from campaigns.stack import services
from campaigns.stack.supervisor import Child, Supervisor


class TemporalServer:
    def __init__(self, data_dir: Path) -> None:
        self.port = services.free_port()
        self.spec, self.address = services.temporal(data_dir, self.port, None, log_dir=data_dir)
        self._supervisor: Supervisor | None = None
        self._child: Child | None = None

    async def start(self) -> TemporalServer:
        self._supervisor = Supervisor(restart=False)
        self._child = await self._supervisor.start(self.spec)
        return self

    def _pid(self) -> int:
        assert self._child is not None and self._child.process is not None
        return self._child.process.pid

    def freeze(self) -> None:
        os.kill(self._pid(), signal.SIGSTOP)

    def thaw(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(self._pid(), signal.SIGCONT)

    async def stop(self) -> None:
        if self._supervisor is not None:
            self.thaw()  # a frozen process cannot stop
            await self._supervisor.stop()
            self._supervisor = self._child = None

    async def restart(self) -> None:
        """Stop it and start it again, on the same port and database file."""
        await self.stop()
        await self.start()

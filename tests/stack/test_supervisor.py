"""The supervisor restarts what exits: at once after a healthy run, backing off from a crash loop."""

from __future__ import annotations

import sys

from campaigns.stack.services import ServiceSpec
from campaigns.stack.supervisor import Supervisor
from tests.support.polling import eventually


def _exiting_after(seconds: float) -> ServiceSpec:
    return ServiceSpec("child", [sys.executable, "-c", f"import time; time.sleep({seconds})"])


async def test_a_crash_loop_backs_off_further_each_time():
    sup = Supervisor(stable_after_s=60)
    child = await sup.start(_exiting_after(0))
    try:
        await eventually(lambda: child.restarts, "two restarts in a row", until=lambda n: n >= 2, within=10)
    finally:
        await sup.stop()


async def test_a_child_that_ran_a_while_comes_back_after_the_shortest_pause():
    sup = Supervisor(stable_after_s=0.2)
    child = await sup.start(_exiting_after(0.4))  # each run is "healthy": longer than 0.2 s
    try:
        pids = set()

        async def seen() -> int:
            if child.process is not None:
                pids.add(child.process.pid)
            return len(pids)

        await eventually(seen, "three runs", until=lambda n: n >= 3, within=15)
        assert child.restarts == 1  # never more than the first step of the back-off
    finally:
        await sup.stop()

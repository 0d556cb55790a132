"""The SSE hub: one read and one rendered frame per changed campaign and tick, whatever the
number of viewers; a slow viewer skips to the latest frame instead of queueing."""

from __future__ import annotations

import contextlib
import uuid

import orjson

from campaigns.analytics.hub import RealtimeHub
from campaigns.analytics.realtime import Realtime
from campaigns.analytics.service import CampaignInfo
from tests.support.analytics import event, send
from tests.support.campaigns import create
from tests.support.polling import eventually


class CountingRealtime(Realtime):
    """The real counters, counting the campaigns the hub reads."""

    reads = 0

    async def read_many(self, requests):
        requests = list(requests)
        self.reads += len(requests)
        return await super().read_many(requests)


def info(campaign: dict) -> CampaignInfo:
    return CampaignInfo(uuid.UUID(campaign["id"]), uuid.UUID(campaign["organizationId"]), "UTC", "USD", 600.0)


def leads(frame: bytes | None) -> int | None:
    if frame is None:
        return None
    data = frame.split(b"data: ", 1)[1].strip()
    return orjson.loads(data)["todayLeads"]


async def test_viewers_share_one_read_and_one_frame_per_change(app, api, settings):
    realtime = CountingRealtime(app.state.redis)
    hub = RealtimeHub(realtime, settings.model_copy(update={"stream_tick_s": 0.05}))
    a, b = await create(api), await create(api)
    await hub.start()
    try:
        with contextlib.ExitStack() as stack:
            viewers_a = [stack.enter_context(hub.watch(info(a))) for _ in range(300)]
            viewers_b = [stack.enter_context(hub.watch(info(b))) for _ in range(100)]
            await eventually(lambda: all(v.frame is not None for v in viewers_a + viewers_b), "first frames")
            assert all(leads(v.take()) == 0 for v in viewers_a + viewers_b)
            await send(api, [event(a["id"], "lead.qualified", {"score": 70})])
            await eventually(lambda: all(leads(v.frame) == 1 for v in viewers_a), "the change, to every viewer")
            frames = {id(v.frame) for v in viewers_a}
            assert len(frames) == 1  # the same rendered bytes for all
            assert all(v.frame is None for v in viewers_b)  # b did not change: nothing new for its viewers
            assert realtime.reads <= 10, realtime.reads  # not one per viewer
            assert hub.viewers == 400
        assert hub.viewers == 0
    finally:
        await hub.stop()


async def test_a_slow_viewer_gets_the_latest_figures_not_a_backlog(app, api, settings):
    hub = RealtimeHub(Realtime(app.state.redis), settings.model_copy(update={"stream_tick_s": 0.05}))
    c = await create(api)
    await hub.start()
    try:
        with hub.watch(info(c)) as slow:
            await eventually(lambda: slow.frame is not None, "the first frame")
            for n in range(1, 4):
                await send(api, [event(c["id"], "lead.qualified", {"score": 70})])
                await eventually(lambda n=n: leads(slow.frame) == n, f"{n} leads")
            # Never read: it holds one frame, the newest.
            assert leads(slow.take()) == 3 and slow.take() is None
    finally:
        await hub.stop()

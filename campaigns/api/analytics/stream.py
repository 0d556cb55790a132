"""The real-time SSE stream of one viewer, as a plain ASGI response.

The hub renders each frame once for all viewers of a campaign; a stream only writes the
latest frame it was handed, pings while nothing changes, and ends when the client leaves or
the server stops. One small task per stream listens for the client leaving; nothing else
runs per viewer, so ten thousand open streams cost little more than their sockets.
"""

from __future__ import annotations

import asyncio

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from campaigns.analytics.hub import RealtimeHub
from campaigns.analytics.service import CampaignInfo

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]
_PING = b": ping\n\n"


class MetricsStream(Response):
    media_type = "text/event-stream"

    def __init__(self, hub: RealtimeHub, info: CampaignInfo, *, ping_s: float) -> None:
        super().__init__(status_code=200)
        self.hub = hub
        self.info = info
        self.ping_s = ping_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})

        async def leaving() -> None:
            while (await receive())["type"] != "http.disconnect":
                pass

        gone = asyncio.ensure_future(leaving())
        try:
            with self.hub.watch(self.info) as viewer:
                while not gone.done() and not viewer.closed:
                    frame = viewer.take()
                    await send({"type": "http.response.body", "body": frame or _PING, "more_body": True})
                    await asyncio.wait((viewer.wake, gone), timeout=self.ping_s, return_when=asyncio.FIRST_COMPLETED)
            if not gone.done():
                await send({"type": "http.response.body", "body": b"", "more_body": False})
        finally:
            gone.cancel()

"""The real-time SSE stream of one viewer, as a plain ASGI response.

The hub renders each frame once for all viewers of a campaign; a stream only writes the
latest frame it was handed (the hub pings quiet streams too), and ends when the client leaves
or the server stops. One small task per stream listens for the client leaving; nothing else
runs per viewer, so ten thousand open streams cost little more than their sockets.
"""

from __future__ import annotations

import asyncio

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from campaigns.analytics.hub import PING, RealtimeHub
from campaigns.analytics.service import CampaignInfo

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


class MetricsStream(Response):
    media_type = "text/event-stream"

    def __init__(self, hub: RealtimeHub, info: CampaignInfo) -> None:
        super().__init__(status_code=200)
        self.hub = hub
        self.info = info

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
        with self.hub.watch(self.info) as viewer:

            async def leaving() -> None:
                while (await receive())["type"] != "http.disconnect":
                    pass
                viewer.close()

            gone = asyncio.ensure_future(leaving())
            try:
                # Headers out at once (a ping), then whatever the hub hands over: frames, pings.
                frame: bytes | None = PING
                while frame is not None:
                    await send({"type": "http.response.body", "body": frame, "more_body": True})
                    frame = await viewer.next()
                if not gone.done():  # the server is stopping: end the response properly
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
            finally:
                gone.cancel()

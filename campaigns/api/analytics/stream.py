"""The real-time SSE stream of one viewer, as a plain ASGI response.

The hub renders each frame once for all viewers of a campaign; a stream only writes the
latest frame it was handed (the hub pings quiet streams too), and ends when the client leaves
or the server stops. One small task per stream listens for the client leaving; nothing else
runs per viewer, so ten thousand open streams cost little more than their sockets.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from campaigns.analytics.hub import PING, RealtimeHub
from campaigns.analytics.leases import Lease
from campaigns.analytics.service import CampaignInfo

# The last frame of a stream whose API key was revoked.
REVOKED = b'event: revoked\ndata: {"code": "key_revoked"}\n\n'

_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),
]


class MetricsStream(Response):
    media_type = "text/event-stream"

    def __init__(
        self, hub: RealtimeHub, info: CampaignInfo, *, lease: Lease, revoked: Callable[[], Awaitable[None]]
    ) -> None:
        """`lease`: the organization's stream slot, held while the stream is open; `revoked`:
        returns once the caller's API key is revoked, which ends the stream."""
        super().__init__(status_code=200)
        self.hub = hub
        self.info = info
        self.lease = lease
        self.revoked = revoked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async with self.lease.kept():
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            with self.hub.watch(self.info) as viewer:
                ended_by_revocation = False

                async def leaving() -> None:
                    while (await receive())["type"] != "http.disconnect":
                        pass
                    viewer.close()

                async def revocation() -> None:
                    nonlocal ended_by_revocation
                    await self.revoked()
                    ended_by_revocation = True
                    viewer.close()

                gone = asyncio.ensure_future(leaving())
                watching = asyncio.ensure_future(revocation())
                try:
                    # Headers out at once (a ping), then whatever the hub hands over: frames, pings.
                    frame: bytes | None = PING
                    while frame is not None:
                        await send({"type": "http.response.body", "body": frame, "more_body": True})
                        frame = await viewer.next()
                    if not gone.done():  # the key was revoked or the server is stopping: end properly
                        last = REVOKED if ended_by_revocation else b""
                        await send({"type": "http.response.body", "body": last, "more_body": False})
                finally:
                    gone.cancel()
                    watching.cancel()

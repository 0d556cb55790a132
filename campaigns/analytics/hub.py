"""Fan-out of real-time metrics to the SSE streams of one API process.

One Redis pub/sub connection per process, subscribed to the channels of the campaigns some
stream of this process is watching (not one connection per viewer). A change marks its
campaign; every tick the hub reads all marked campaigns in one pipelined round trip, renders
each one's SSE frame once, and hands that same frame to every viewer of the campaign. Per
tick that is one read and one rendering per changed campaign, whatever the number of
viewers; a viewer costs one wake-up and one socket write. Ticks come every `STREAM_TICK_S`,
or further apart (up to a second) when the last one handed out more frames than
`STREAM_FRAMES_PER_S` allows: the CPU the streams take stays bounded however many viewers
there are, and a few viewers still see changes at once.

A viewer holds only the latest frame it has not sent: one that reads slowly skips to the
newest figures instead of queueing them, so no viewer grows memory or is dropped. Every
`STREAM_REFRESH_S` every watched campaign is read again without a change (the day rolls
over, calls age out) and sent only if its figures differ.

While Redis is unavailable nothing changes: the streams stay open (pinged) and everything is
read again once it is back, since changes may have been missed meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import redis.exceptions

from campaigns.analytics import service
from campaigns.analytics.realtime import PREFIX, Realtime, channel
from campaigns.domain import periods
from campaigns.redis_client import breaker_of
from campaigns.settings import Settings

log = logging.getLogger("campaigns.analytics.hub")

_CHANNEL_PREFIX = f"{PREFIX}chan:"
_READ_CHUNK = 500  # campaigns per pipelined read
MAX_TICK_S = 1.0  # however many viewers, a change reaches them within about this


PING = b": ping\n\n"


class Viewer:
    """One stream: the latest frame it has not sent yet, and a future set when there is one."""

    __slots__ = ("frame", "wake", "closed")

    def __init__(self, frame: bytes | None) -> None:
        self.frame = frame
        self.wake: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed = False
        if frame is not None:
            self.wake.set_result(None)

    async def next(self) -> bytes | None:
        """The next frame to send, once there is one; None once the viewer is closed."""
        if self.frame is None and not self.closed:
            await self.wake
        self.wake = asyncio.get_running_loop().create_future()
        frame, self.frame = self.frame, None
        return None if self.closed else frame

    def take(self) -> bytes | None:
        """The frame waiting now, if any (without waiting)."""
        frame, self.frame = self.frame, None
        return frame

    def offer(self, frame: bytes) -> None:
        self.frame = frame
        if not self.wake.done():
            self.wake.set_result(None)

    def close(self) -> None:
        self.closed = True
        if not self.wake.done():
            self.wake.set_result(None)


class _Watch:
    """A watched campaign: what the reads need, its viewers and its latest frame."""

    __slots__ = ("info", "viewers", "data", "frame", "seq", "sent_at")

    def __init__(self, info: service.CampaignInfo) -> None:
        self.info = info
        self.viewers: set[Viewer] = set()
        self.data: bytes | None = None
        self.frame: bytes | None = None
        self.seq = 0
        self.sent_at = time.monotonic()  # when its viewers were last handed something


class RealtimeHub:
    def __init__(self, realtime: Realtime, settings: Settings) -> None:
        self.realtime = realtime
        self._redis = realtime.redis
        self.breaker = breaker_of(self._redis)
        self.tick_s = settings.stream_tick_s
        self.frames_per_s = settings.stream_frames_per_s
        self.refresh_s = settings.stream_refresh_s
        self.ping_s = settings.stream_ping_s
        self._watches: dict[str, _Watch] = {}
        self._dirty: set[str] = set()
        self._wanted = asyncio.Event()  # the set of watched campaigns changed
        self._tasks: list[asyncio.Task[None]] = []
        self._closing = False
        self._should_exit: Callable[[], bool] = lambda: False
        self.breaker.when_closed(self._everything_dirty)

    async def start(self, *, should_exit: Callable[[], bool] | None = None) -> None:
        """`should_exit`: says when the server is stopping, so that the streams end then
        (a graceful shutdown would otherwise wait on them)."""
        if should_exit is not None:
            self._should_exit = should_exit
        self._tasks = [
            asyncio.create_task(self._listen(), name="realtime-hub-listen"),
            asyncio.create_task(self._tick(), name="realtime-hub-tick"),
        ]

    async def stop(self) -> None:
        self.close_streams()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def close_streams(self) -> None:
        """End every stream (the server is shutting down)."""
        self._closing = True
        for watch in self._watches.values():
            for viewer in watch.viewers:
                viewer.close()

    @property
    def viewers(self) -> int:
        return sum(len(w.viewers) for w in self._watches.values())

    @contextlib.contextmanager
    def watch(self, info: service.CampaignInfo) -> Iterator[Viewer]:
        """A viewer of the campaign while the block runs: it is handed the campaign's latest
        frame at once (if the hub has one) and every new one after."""
        key = str(info.id)
        watch = self._watches.get(key)
        if watch is None:
            watch = self._watches[key] = _Watch(info)
            self._dirty.add(key)
            self._wanted.set()
        else:
            watch.info = info  # the latest viewer's view of the campaign (its time zone)
        viewer = Viewer(watch.frame)
        if self._closing:
            viewer.close()
        watch.viewers.add(viewer)
        try:
            yield viewer
        finally:
            watch.viewers.discard(viewer)
            if not watch.viewers and self._watches.get(key) is watch:
                del self._watches[key]
                self._dirty.discard(key)
                self._wanted.set()

    def _everything_dirty(self) -> None:
        self._dirty.update(self._watches)

    # --- Reading and fanning out -------------------------------------------------------

    def _pause(self, frames: int) -> float:
        """Until the next tick: `STREAM_TICK_S`, or longer when the last tick handed out more
        frames than `STREAM_FRAMES_PER_S` allows in that time (at most a second): a few
        viewers see changes at once, ten thousand at the pace the process can write them."""
        return min(max(self.tick_s, frames / self.frames_per_s), MAX_TICK_S)

    async def _tick(self) -> None:
        last_refresh = time.monotonic()
        frames = 0
        while True:
            await asyncio.sleep(self._pause(frames))
            if self._should_exit() and not self._closing:
                self.close_streams()
            try:
                if time.monotonic() - last_refresh >= self.refresh_s:
                    last_refresh = time.monotonic()
                    self._everything_dirty()
                frames = await self.push()
                self._ping()
            except asyncio.CancelledError:
                raise
            except Exception:  # noqa: BLE001 - the next tick tries again
                log.exception("real-time streams: a tick failed")

    async def push(self) -> int:
        """Read the marked campaigns and hand their new frames to their viewers; how many."""
        due = [k for k in self._dirty if k in self._watches]
        self._dirty.clear()
        frames = 0
        if not due:
            return frames
        if self.breaker.is_open:
            self._dirty.update(due)  # read once Redis is back
            return frames
        now = datetime.now(UTC)
        for start in range(0, len(due), _READ_CHUNK):
            chunk = [(k, self._watches[k].info) for k in due[start : start + _READ_CHUNK] if k in self._watches]
            try:
                readings = await self.realtime.read_many(
                    (k, *periods.today(now, info.timezone), service.active_since(info, now)) for k, info in chunk
                )
            except (redis.exceptions.RedisError, OSError):
                self._dirty.update(k for k, _ in chunk)
                continue
            for (key, info), reading in zip(chunk, readings, strict=True):
                watch = self._watches.get(key)
                if watch is None:
                    continue
                data = service.metrics_from(info, reading, now).model_dump_json(by_alias=True).encode()
                if data == watch.data:
                    continue
                watch.data = data
                watch.seq += 1
                watch.frame = b"event: metrics\nid: %d\ndata: %s\n\n" % (watch.seq, data)
                watch.sent_at = time.monotonic()
                frames += len(watch.viewers)
                for viewer in watch.viewers:
                    viewer.offer(watch.frame)
        return frames

    def _ping(self) -> None:
        """A comment line to the viewers of campaigns quiet for `ping_s`: proxies keep the
        connections, and a gone client is noticed."""
        now = time.monotonic()
        for watch in self._watches.values():
            if now - watch.sent_at >= self.ping_s:
                watch.sent_at = now
                for viewer in watch.viewers:
                    if viewer.frame is None:
                        viewer.offer(PING)

    # --- Hearing of changes ------------------------------------------------------------

    async def _listen(self) -> None:
        while True:
            await self.breaker.wait_closed()
            pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
            subscribed: set[str] = set()
            try:
                while True:
                    wanted = set(self._watches)
                    if wanted - subscribed:
                        await pubsub.subscribe(*(channel(c) for c in wanted - subscribed))
                    if subscribed - wanted:
                        await pubsub.unsubscribe(*(channel(c) for c in subscribed - wanted))
                    subscribed = wanted
                    self._wanted.clear()
                    if not subscribed:
                        await self._wanted.wait()
                        continue
                    if self.breaker.is_open:
                        raise redis.exceptions.ConnectionError("Redis is unavailable")
                    message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=self.tick_s)
                    while message is not None:
                        self._heard(message)
                        message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=0)
            except asyncio.CancelledError:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                raise
            except (redis.exceptions.RedisError, OSError) as exc:
                log.warning("real-time pub/sub connection lost (%r); reconnecting", exc)
                with contextlib.suppress(Exception):
                    await pubsub.aclose()
                self._everything_dirty()  # changes may have been missed
                await asyncio.sleep(0.5)

    def _heard(self, message: dict) -> None:
        name = message.get("channel")
        if isinstance(name, bytes):
            name = name.decode()
        if name and name.startswith(_CHANNEL_PREFIX):
            key = name[len(_CHANNEL_PREFIX) :]
            if key in self._watches:
                self._dirty.add(key)

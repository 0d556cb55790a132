"""Real HTTP servers for tests: an ASGI app on a local port, in the test's event loop."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import uvicorn

from campaigns.api.app import create_app
from campaigns.stack.services import free_port
from tests.support.polling import eventually


class Server:
    """An ASGI app on a real local port, in this event loop; can be stopped and started
    again on the same port (a service that goes down for a while)."""

    def __init__(self, app: Any, port: int | None = None, *, host: str = "127.0.0.1") -> None:
        self.app = app
        self.host = host  # another loopback address (127.0.0.2) stands for an internal service
        self.port = port or free_port(host)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        config = uvicorn.Config(
            self.app, host=self.host, port=self.port, log_level="warning", lifespan="off",
            # A request still in flight at stop (a deliberately slow answer, an open stream)
            # gets a second, so stopping never waits on it.
            timeout_graceful_shutdown=1,
        )
        self._server = uvicorn.Server(config)
        self._server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
        self._task = asyncio.create_task(self._server.serve())
        server, task = self._server, self._task
        await eventually(lambda: server.started or task.done(), f"a server on port {self.port}", every=0.02)
        if task.done():
            task.result()  # it could not start: raise why

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await self._task
            self._server = self._task = None


@contextlib.asynccontextmanager
async def serving(app: Any, port: int | None = None) -> AsyncIterator[Server]:
    server = Server(app, port)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


@contextlib.asynccontextmanager
async def another_app(settings: Any) -> AsyncIterator[Any]:
    """Another API process in this one (its own pool, caches and analytics loops), with these
    settings: for limits the session's app has at their defaults, or a second replica."""
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app

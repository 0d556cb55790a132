"""A real HTTP receiver on loopback for webhook tests: records every request and answers
as told (status, headers, delay), and can be stopped and started again on its port (it is
an ASGI app behind a support.servers.Server)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.support.polling import eventually
from tests.support.servers import Server


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: bytes
    at: float  # time.time() on arrival

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Answer:
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b"ok"
    delay: float = 0.0


class Receiver:
    """`answer` decides each response from the request number (1-based) and the request."""

    def __init__(self, answer: Callable[[int, Received], Answer] | None = None, host: str = "127.0.0.1") -> None:
        self.answer = answer or (lambda n, r: Answer())
        self.requests: list[Received] = []
        # The port is chosen now, so a test can subscribe a receiver that is not listening yet.
        self.server = Server(self, host=host)

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def url(self) -> str:
        return f"{self.server.url}/hook"

    async def __call__(self, scope, receive, send) -> None:  # the ASGI app
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        request = Received(
            path=scope["path"],
            headers={k.decode().lower(): v.decode() for k, v in scope["headers"]},
            body=body,
            at=time.time(),
        )
        self.requests.append(request)
        answer = self.answer(len(self.requests), request)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        headers = [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def start(self) -> Receiver:
        await self.server.start()
        return self

    async def stop(self) -> None:
        await self.server.stop()

    async def wait_for(self, count: int, within: float = 20) -> list[Received]:
        """The requests received, once there are at least `count`."""
        return await eventually(lambda: self.requests, f"{count} requests at {self.url}",
                                until=lambda requests: len(requests) >= count, within=within)

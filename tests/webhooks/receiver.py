"""A real HTTP receiver on loopback for webhook tests: records every request and answers
as told (status, headers, delay), and can be stopped and started again on its port."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import uvicorn


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
        self.host = host
        self.port = _free_port(host)
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task | None = None
        self._arrived = asyncio.Condition()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/hook"

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
        async with self._arrived:
            self._arrived.notify_all()
        answer = self.answer(len(self.requests), request)
        if answer.delay:
            await asyncio.sleep(answer.delay)
        headers = [(k.lower().encode(), v.encode()) for k, v in answer.headers.items()]
        await send({"type": "http.response.start", "status": answer.status, "headers": headers})
        await send({"type": "http.response.body", "body": answer.body})

    async def start(self) -> Receiver:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self.port))
        config = uvicorn.Config(self, log_level="warning", lifespan="off", timeout_graceful_shutdown=1)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            await asyncio.sleep(0.01)
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            await self._task
            self._server = None

    async def wait_for(self, count: int, timeout: float = 20) -> list[Received]:
        """Wait until at least `count` requests have arrived."""
        async with self._arrived:
            await asyncio.wait_for(self._arrived.wait_for(lambda: len(self.requests) >= count), timeout)
        return self.requests


def _free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]

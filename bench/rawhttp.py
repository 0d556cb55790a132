"""A minimal HTTP/1.1 keep-alive client on asyncio streams, for benchmarks that must measure
the server rather than the client: a request costs it a write and a few reads (tens of
microseconds), where a general client costs a millisecond or more on a busy small machine.

It speaks only what the API answers here: a status line, headers, and a body of
`Content-Length` bytes (`request`); or an event stream read line by line (`stream`)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, host: str) -> None:
        self.reader = reader
        self.writer = writer
        self.host = host

    @classmethod
    async def open(cls, url: str, *, limit: int = 2**20) -> Connection:
        hostport = url.split("://", 1)[1].rstrip("/")
        host, port = hostport.rsplit(":", 1)
        reader, writer = await asyncio.open_connection(host, int(port), limit=limit)
        return cls(reader, writer, hostport)

    def _head(self, method: str, path: str, headers: dict[str, str]) -> bytes:
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}", *(f"{k}: {v}" for k, v in headers.items())]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _status_and_headers(self) -> tuple[int, dict[str, str]]:
        head = await self.reader.readuntil(b"\r\n\r\n")
        first, *rest = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in rest:
            if ":" in line:
                k, v = line.split(":", 1)
                headers[k.strip().lower()] = v.strip()
        return int(first.split(" ", 2)[1]), headers

    async def request(
        self, method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
    ) -> tuple[int, bytes]:
        headers = dict(headers or {})
        if body:
            headers |= {"Content-Type": "application/json", "Content-Length": str(len(body))}
        self.writer.write(self._head(method, path, headers) + body)
        status, found = await self._status_and_headers()
        body = await self.reader.readexactly(int(found.get("content-length", "0")))
        return status, body

    async def stream(self, path: str, headers: dict[str, str] | None = None) -> AsyncIterator[bytes]:
        """The lines of a chunked event stream (chunk sizes left out), as they arrive."""
        self.writer.write(self._head("GET", path, {"Accept": "text/event-stream", **(headers or {})}))
        status, found = await self._status_and_headers()
        if status != 200:
            raise RuntimeError(f"stream answered {status}")
        chunked = found.get("transfer-encoding") == "chunked"
        while True:
            if chunked:
                size = int((await self.reader.readuntil(b"\r\n"))[:-2], 16)
                if size == 0:
                    return
                data = await self.reader.readexactly(size + 2)
                for line in data[:-2].split(b"\n"):
                    yield line
            else:
                line = await self.reader.readline()
                if not line:
                    return
                yield line.rstrip(b"\n")

    async def open_stream(self, path: str, headers: dict[str, str] | None = None) -> None:
        """Start an event stream: send the request and read its status and headers. Read the
        body with `reader.read` (chunk framing included: a reader that only looks for
        patterns in the data need not take it apart)."""
        self.writer.write(self._head("GET", path, {"Accept": "text/event-stream", **(headers or {})}))
        status, _ = await self._status_and_headers()
        if status != 200:
            raise RuntimeError(f"stream answered {status}")

    async def close(self) -> None:
        self.writer.close()
        try:
            await self.writer.wait_closed()
        except (ConnectionError, OSError):
            pass

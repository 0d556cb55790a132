"""One HTTP attempt: POST the signed body, never to a forbidden address, within the
time allowed, and classify whatever happened.

httpcore (httpx's engine) with a network backend of our own: every new connection
resolves the host itself, checks each address with the SSRF rules and connects to the
address it checked, so a name that resolves elsewhere between the check at creation and
now (DNS rebinding) is refused. Keep-alive connections are pooled per host:port as usual.
Redirects are never followed: a 3xx is a failed attempt.
"""

from __future__ import annotations

import asyncio
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpcore
from httpcore._backends.auto import AutoBackend

from campaigns.domain import netguard
from campaigns.domain.webhooks import ErrorClass

EXCERPT_BYTES = 1024
READ_CAP_BYTES = 64 * 1024  # read at most this much of a response, then drop the connection


class Blocked(Exception):
    """The host resolves to an address the SSRF guard forbids."""


class DnsFailure(Exception):
    pass


class GuardedBackend(AutoBackend):
    def __init__(self, allowed: tuple[netguard.Network, ...]) -> None:
        super().__init__()
        self.allowed = allowed

    async def connect_tcp(self, host, port, timeout=None, local_address=None, socket_options=None):  # type: ignore[override]
        literal = netguard.literal_ip(host)
        if literal is not None:
            addresses = [literal]
        else:
            loop = asyncio.get_running_loop()
            try:
                infos = await asyncio.wait_for(
                    loop.getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=timeout
                )
            except (socket.gaierror, UnicodeError) as err:
                raise DnsFailure(f"cannot resolve {host!r}: {err}") from None
            except TimeoutError:
                raise DnsFailure(f"resolving {host!r} timed out") from None
            addresses = [netguard.literal_ip(str(info[4][0])) for info in infos]
            addresses = [a for a in addresses if a is not None]
            if not addresses:
                raise DnsFailure(f"{host!r} has no address")
        reasons = [netguard.blocked_reason(a, self.allowed) for a in addresses]
        permitted = [a for a, r in zip(addresses, reasons, strict=True) if r is None]
        if not permitted:
            raise Blocked(f"{host} resolves only to forbidden addresses: {reasons[0]}")
        return await super().connect_tcp(
            str(permitted[0]), port, timeout=timeout, local_address=local_address, socket_options=socket_options
        )


@dataclass
class Response:
    status_code: int | None
    excerpt: str | None
    latency_ms: float
    error_class: ErrorClass | None
    error: str | None
    retry_after_s: float | None = None

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_after_seconds(value: str | None, now: datetime | None = None) -> float | None:
    """`Retry-After` as seconds: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError):
            return True
        seen = seen.__cause__ or seen.__context__
    text = str(exc).lower()
    return "ssl" in text or "certificate" in text or "tls" in text


class Sender:
    """Holds the connection pool; one per worker process."""

    def __init__(self, *, allowed: tuple[netguard.Network, ...], connect_timeout: float, total_timeout: float) -> None:
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self.pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl.create_default_context(),
            max_connections=1000,
            max_keepalive_connections=200,
            keepalive_expiry=30,
            network_backend=GuardedBackend(allowed),
        )

    async def aclose(self) -> None:
        await self.pool.aclose()

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Response:
        start = time.perf_counter()

        def done(status=None, excerpt=None, error_class=None, error=None, retry_after=None) -> Response:
            return Response(status, excerpt, (time.perf_counter() - start) * 1000, error_class, error, retry_after)

        timeouts = {"connect": self.connect_timeout, "read": self.total_timeout, "write": self.total_timeout,
                    "pool": self.total_timeout}
        try:
            async with asyncio.timeout(self.total_timeout):
                async with self.pool.stream(
                    "POST", url, headers=list(headers.items()), content=body, extensions={"timeout": timeouts}
                ) as response:
                    chunks, size = [], 0
                    async for chunk in response.aiter_stream():
                        chunks.append(chunk)
                        size += len(chunk)
                        if size >= READ_CAP_BYTES:
                            break
                    raw = b"".join(chunks)[:EXCERPT_BYTES]
                    status = response.status
                    retry_after = None
                    for name, value in response.headers:
                        if name.lower() == b"retry-after":
                            retry_after = retry_after_seconds(value.decode("latin-1"))
            excerpt = raw.decode("utf-8", errors="replace")
            if 200 <= status < 300:
                return done(status, excerpt)
            reason = "redirects are not followed" if 300 <= status < 400 else f"HTTP {status}"
            return done(status, excerpt, "http", reason, retry_after)
        except Blocked as err:
            return done(error_class="blocked", error=str(err))
        except DnsFailure as err:
            return done(error_class="dns", error=str(err))
        except (TimeoutError, httpcore.TimeoutException) as err:
            what = "connecting" if isinstance(err, httpcore.ConnectTimeout) else "waiting for the response"
            return done(error_class="timeout", error=f"timed out {what} (limit {self.total_timeout:g}s)")
        except httpcore.ConnectError as err:
            if _is_tls(err):
                return done(error_class="tls", error=f"TLS handshake failed: {err}")
            return done(error_class="connect", error=f"cannot connect: {err or type(err).__name__}")
        except (httpcore.NetworkError, httpcore.ProtocolError) as err:
            if _is_tls(err):
                return done(error_class="tls", error=f"TLS error: {err}")
            return done(error_class="connect", error=f"connection failed: {err or type(err).__name__}")
        except (ssl.SSLError, ssl.CertificateError) as err:
            return done(error_class="tls", error=f"TLS error: {err}")
        except httpcore.UnsupportedProtocol as err:
            return done(error_class="blocked", error=f"unsupported URL: {err}")
        except OSError as err:
            return done(error_class="connect", error=f"cannot connect: {err}")

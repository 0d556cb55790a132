"""One HTTP attempt: POST the signed body, never to a forbidden address, within the
time allowed, and classify whatever happened.

aiohttp with a resolver of our own: every new connection resolves the host through it,
it drops the addresses the SSRF rules forbid, and the connection is made to an address it
returned. So a name that resolves elsewhere since the endpoint was saved (DNS rebinding)
is refused at connect time; a URL with an IP literal is checked before the request. TLS
still verifies the certificate against the host name. Keep-alive connections are pooled
per host (aiohttp keys its pool by host, so thousands of endpoints cost no more per
request than one). Redirects are never followed, and proxies from the environment are
never used: a 3xx is a failed attempt.
"""

from __future__ import annotations

import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urlsplit

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from campaigns.domain import netguard
from campaigns.domain.webhooks import ErrorClass

EXCERPT_BYTES = 1024
READ_CAP_BYTES = 64 * 1024  # read at most this much of a response, then drop the connection


class Blocked(Exception):
    """The host is, or resolves only to, addresses the SSRF guard forbids."""


class GuardedResolver(AbstractResolver):
    def __init__(self, allowed: tuple[netguard.Network, ...]) -> None:
        self.allowed = allowed
        self.inner = ThreadedResolver()

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        results = await self.inner.resolve(host, port, family)
        reasons = []
        permitted = []
        for result in results:
            address = netguard.literal_ip(result["host"])
            reason = "unparsable address" if address is None else netguard.blocked_reason(address, self.allowed)
            reasons.append(reason)
            if reason is None:
                permitted.append(result)
        if not permitted:
            raise Blocked(f"{host} resolves only to forbidden addresses: {reasons[0] if reasons else 'none'}")
        return permitted

    async def close(self) -> None:
        await self.inner.close()


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
        if isinstance(seen, ssl.SSLError | ssl.CertificateError | aiohttp.ClientSSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class Sender:
    """Holds the connection pool; one per worker process, made inside its event loop."""

    def __init__(self, *, allowed: tuple[netguard.Network, ...], connect_timeout: float, total_timeout: float) -> None:
        self.allowed = allowed
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=GuardedResolver(self.allowed),
                limit=1000,
                limit_per_host=0,
                ttl_dns_cache=10,
                keepalive_timeout=30,
                ssl=ssl.create_default_context(),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=False,
                timeout=aiohttp.ClientTimeout(total=self.total_timeout, sock_connect=self.connect_timeout),
            )
        return self._session

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def post(self, url: str, headers: dict[str, str], body: bytes) -> Response:
        start = time.perf_counter()

        def done(status=None, excerpt=None, error_class=None, error=None, retry_after=None) -> Response:
            return Response(status, excerpt, (time.perf_counter() - start) * 1000, error_class, error, retry_after)

        literal = netguard.literal_ip(urlsplit(url).hostname or "")
        if literal is not None:
            reason = netguard.blocked_reason(literal, self.allowed)
            if reason:
                return done(error_class="blocked", error=f"forbidden address: {reason}")
        try:
            async with self._client().post(url, data=body, headers=headers, allow_redirects=False) as response:
                raw = b""
                async for chunk in response.content.iter_chunked(16 * 1024):
                    raw += chunk
                    if len(raw) >= READ_CAP_BYTES:
                        break
                status = response.status
                retry_after = retry_after_seconds(response.headers.get("Retry-After"))
            excerpt = raw[:EXCERPT_BYTES].decode("utf-8", errors="replace")
            if 200 <= status < 300:
                return done(status, excerpt)
            reason = "redirects are not followed" if 300 <= status < 400 else f"HTTP {status}"
            return done(status, excerpt, "http", reason, retry_after)
        except Blocked as err:
            return done(error_class="blocked", error=str(err))
        except aiohttp.ClientConnectorDNSError as err:
            return done(error_class="dns", error=f"cannot resolve {urlsplit(url).hostname!r}: {err.os_error}")
        except (TimeoutError, aiohttp.ServerTimeoutError) as err:
            what = "connecting" if isinstance(err, aiohttp.ConnectionTimeoutError) else "waiting for the response"
            return done(error_class="timeout", error=f"timed out {what} (limit {self.total_timeout:g}s)")
        except aiohttp.ClientConnectorError as err:
            if _is_tls(err):
                return done(error_class="tls", error=f"TLS handshake failed: {err}")
            return done(error_class="connect", error=f"cannot connect: {err.os_error or err}")
        except aiohttp.InvalidURL as err:
            return done(error_class="blocked", error=f"invalid URL: {err}")
        except (aiohttp.ClientError, OSError) as err:
            if _is_tls(err):
                return done(error_class="tls", error=f"TLS error: {err}")
            return done(error_class="connect", error=f"connection failed: {err or type(err).__name__}")

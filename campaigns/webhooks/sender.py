"""One HTTP attempt: POST the signed body, never to a forbidden address, within the
time allowed, and classify whatever happened.

aiohttp with a resolver of our own: every new connection resolves the host through it,
it drops the addresses the SSRF rules forbid, and the connection is made to an address it
returned. So a name that resolves elsewhere since the endpoint was saved (DNS rebinding)
is refused at connect time. The host is checked as aiohttp itself reads it (yarl's
IDNA/UTS-46 mapping, `netguard.client_host`), since aiohttp skips the resolver for a host
that reads as an IP literal. And whatever the resolver said, the address a socket is about
to connect to, and then the peer of the connection a request is about to be written to,
are checked again: no spelling of an address, and no path around the resolver, reaches a
forbidden one, and nothing of the request is sent before that. TLS still verifies the
certificate against the host name. Keep-alive connections are pooled per host (aiohttp
keys its pool by host, so thousands of endpoints cost no more per request than one).
Redirects are never followed, and proxies from the environment are never used: a 3xx is a
failed attempt.

A tenant reads the error of every attempt, so a refusal says `netguard.REFUSED` and never
which address a name led to.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import socket
import ssl
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import aiohttp
import yarl
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import ThreadedResolver

from campaigns.domain import netguard
from campaigns.domain.webhooks import ErrorClass

log = logging.getLogger("campaigns.webhooks")

EXCERPT_BYTES = 1024
READ_CAP_BYTES = 64 * 1024  # read at most this much of a response, then drop the connection


class Blocked(Exception):
    """The host is, or resolves only to, addresses the SSRF guard forbids. Its message is
    what the tenant reads; `detail` (which address, and why) is for the logs."""

    def __init__(self, detail: str) -> None:
        super().__init__(netguard.REFUSED)
        self.detail = detail


class BlockedPeer(OSError, Blocked):
    """A socket was about to connect to a forbidden address. An OSError, so that the
    happy-eyeballs connect records it as the failure of that address like any other."""

    def __init__(self, detail: str) -> None:
        OSError.__init__(self, errno.EACCES, netguard.REFUSED)
        self.detail = detail

    def __str__(self) -> str:
        return netguard.REFUSED


def _refusal(address: str, allowed: tuple[netguard.Network, ...]) -> str | None:
    ip = netguard.literal_ip(address)
    return "unparsable address" if ip is None else netguard.blocked_reason(ip, allowed)


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
            reason = _refusal(result["host"], self.allowed)
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


# An IPv4 address, or anything with two colons (IPv6).
_ADDRESS = re.compile(r"\b\d{1,3}(?:\.\d{1,3}){3}\b|[0-9A-Fa-f]*:[0-9A-Fa-f]*:[0-9A-Fa-f:.%]*")


def _os_reason(err: BaseException | None) -> str:
    """Why a connection failed, without the addresses the OS names (what a host name
    resolved to is not the tenant's to learn: it may be an internal one the guard allows)."""
    if isinstance(err, OSError) and err.errno:
        return os.strerror(err.errno).lower()
    return _without_addresses(err) if err is not None else "unknown error"


def _without_addresses(err: BaseException) -> str:
    return _ADDRESS.sub("<address>", str(err) or type(err).__name__)


def _is_tls(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLError | ssl.CertificateError | aiohttp.ClientSSLError):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def guarded_socket_factory(allowed: tuple[netguard.Network, ...]) -> aiohttp.connector.SocketFactoryType:
    """Sockets that refuse to be made for a forbidden address: the last check before a
    connection, on the very address it goes to, whatever produced that address."""

    def make(addr_info: aiohttp.connector.AddrInfoType) -> socket.socket:
        family, type_, proto, _, sockaddr = addr_info
        reason = _refusal(str(sockaddr[0]), allowed)
        if reason:
            raise BlockedPeer(f"connecting to {sockaddr[0]}: {reason}")
        return socket.socket(family=family, type=type_, proto=proto)

    return make


def guarded_request_class(allowed: tuple[netguard.Network, ...]) -> type[aiohttp.ClientRequest]:
    """Requests that check the peer of the connection they are given (new or pooled)
    before writing a byte to it."""

    class GuardedRequest(aiohttp.ClientRequest):
        async def send(self, conn: aiohttp.connector.Connection) -> aiohttp.ClientResponse:
            transport = conn.transport
            peer = transport.get_extra_info("peername") if transport is not None else None
            reason = _refusal(str(peer[0]), allowed) if peer else "no peer address"
            if reason:
                raise Blocked(f"connected to {peer[0] if peer else '?'}: {reason}")
            return await super().send(conn)

    return GuardedRequest


class Sender:
    """Holds the connection pool; one per worker process, made inside its event loop."""

    def __init__(
        self,
        *,
        allowed: tuple[netguard.Network, ...],
        connect_timeout: float,
        total_timeout: float,
        resolver: AbstractResolver | None = None,
    ) -> None:
        self.allowed = allowed
        self.connect_timeout = connect_timeout
        self.total_timeout = total_timeout
        self._resolver = resolver  # the guarded one unless given (a test may give one that lies)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            connector = aiohttp.TCPConnector(
                resolver=self._resolver or GuardedResolver(self.allowed),
                limit=1000,
                limit_per_host=0,
                ttl_dns_cache=10,
                keepalive_timeout=30,
                ssl=ssl.create_default_context(),
                socket_factory=guarded_socket_factory(self.allowed),
            )
            self._session = aiohttp.ClientSession(
                connector=connector,
                trust_env=False,
                auto_decompress=False,
                request_class=guarded_request_class(self.allowed),
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

        try:
            # Parsed once: the host checked is the host aiohttp connects to.
            target = yarl.URL(url)
            host = netguard.client_host(url)
            literal = netguard.host_address(host)
        except ValueError as err:
            return done(error_class="blocked", error=f"invalid URL: {err}")  # names the host at most
        reason = netguard.blocked_reason(literal, self.allowed) if literal is not None else None
        if reason:
            log.info("webhook to %s refused: %s", host, reason)  # the host only: a URL may be a credential
            return done(error_class="blocked", error=netguard.REFUSED)
        try:
            async with self._client().post(target, data=body, headers=headers, allow_redirects=False) as response:
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
            log.info("webhook to %s refused: %s", host, err.detail)
            return done(error_class="blocked", error=netguard.REFUSED)
        except aiohttp.ClientConnectorDNSError as err:
            return done(error_class="dns", error=f"cannot resolve {host!r}: {err.os_error}")
        except (TimeoutError, aiohttp.ServerTimeoutError) as err:
            what = "connecting" if isinstance(err, aiohttp.ConnectionTimeoutError) else "waiting for the response"
            return done(error_class="timeout", error=f"timed out {what} (limit {self.total_timeout:g}s)")
        except aiohttp.ClientConnectorError as err:
            if isinstance(err.os_error, BlockedPeer):
                log.info("webhook to %s refused: %s", host, err.os_error.detail)
                return done(error_class="blocked", error=netguard.REFUSED)
            if _is_tls(err):
                return done(error_class="tls", error=f"TLS handshake failed: {_without_addresses(err)}")
            return done(error_class="connect", error=f"cannot connect to {host}: {_os_reason(err.os_error)}")
        except aiohttp.InvalidURL:
            return done(error_class="blocked", error="invalid URL")  # its text is the URL
        except (aiohttp.ClientError, OSError) as err:
            if _is_tls(err):
                return done(error_class="tls", error=f"TLS error: {_without_addresses(err)}")
            return done(error_class="connect", error=f"connection to {host} failed: {_os_reason(err)}")
        except Exception as err:  # noqa: BLE001 - any failure is a classified attempt, never a crash
            # e.g. a header value the client will not write: an attempt that raised would be
            # retried by the activity forever instead of counting towards giving up.
            log.warning("webhook to %s failed unexpectedly: %s", host, type(err).__name__)
            return done(error_class="unexpected", error=f"{type(err).__name__}: {_without_addresses(err)}"[:500])

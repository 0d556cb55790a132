"""The SSRF guard for the platform's own outbound services (`PIPELINE_URL`,
`KNOWLEDGE_BASE_URL`): the same address rules as webhooks, with the operator's
`SERVICE_ALLOWED_NETWORKS` allowed (loopback by default, where the embedded simulator and
local sidecars listen).

httpx hands the host exactly as it will use it (already through its IDNA handling) to its
network backend; ours reads it as an address if it is written as one, resolves it
otherwise, connects only to an address the rules allow, and checks the connection's peer
before httpx writes a byte. TLS still verifies the certificate against the host name.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable

import anyio
import httpcore
import httpx

from campaigns.domain import netguard
from campaigns.settings import Settings

log = logging.getLogger("campaigns.clients")


class Refused(httpcore.NetworkError):
    """The service's host is, or resolves only to, a forbidden address. A network error to
    httpx, so callers handle it like an unreachable service; not a connect error, so
    httpcore does not retry it. The message never names the address (it may reach a
    tenant, e.g. in a 503 about knowledge bases)."""

    def __init__(self, detail: str) -> None:
        super().__init__(netguard.REFUSED)
        self.detail = detail
        # The operator's to act on (allow the network in SERVICE_ALLOWED_NETWORKS, or fix the URL).
        log.warning("outbound service refused by the SSRF guard: %s (SERVICE_ALLOWED_NETWORKS)", detail)


def allowed_networks(settings: Settings) -> tuple[netguard.Network, ...]:
    return netguard.parse_networks(settings.service_allowed_networks)


class GuardedBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, allowed: tuple[netguard.Network, ...]) -> None:
        self.allowed = allowed
        self.inner = httpcore.AnyIOBackend()

    def _reason(self, address: str) -> str | None:
        ip = netguard.literal_ip(address)
        return "unparsable address" if ip is None else netguard.blocked_reason(ip, self.allowed)

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's network backend interface names it
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            literal = netguard.host_address(host)
        except ValueError as err:
            raise Refused(f"{host}: {err}") from None
        if literal is not None:
            candidates = [str(literal)]
        else:
            try:
                with anyio.fail_after(timeout):
                    infos = await anyio.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except TimeoutError as err:
                raise httpcore.ConnectTimeout(f"resolving {host!r} timed out") from err
            except OSError as err:
                raise httpcore.ConnectError(f"cannot resolve {host!r}: {err}") from err
            candidates = list(dict.fromkeys(str(info[4][0]) for info in infos))
        permitted = [a for a in candidates if self._reason(a) is None]
        if not permitted:
            raise Refused(f"{host}: {self._reason(candidates[0]) if candidates else 'no address'}")
        error: Exception | None = None
        for address in permitted:
            try:
                stream = await self.inner.connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as err:
                error = err
                continue
            peer = stream.get_extra_info("server_addr")
            reason = self._reason(str(peer[0])) if peer else "no peer address"
            if reason:
                await stream.aclose()
                raise Refused(f"{host}: connected to {peer[0] if peer else '?'}: {reason}")
            return stream
        assert error is not None
        raise error

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109 - httpcore's network backend interface names it
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise Refused("unix sockets are not services")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx's own transport, connecting through `GuardedBackend`, never through a proxy
    from the environment."""

    def __init__(self, allowed: tuple[netguard.Network, ...], *, retries: int = 0) -> None:
        super().__init__(trust_env=False, retries=retries)
        # The pool httpx would build, with the network backend it offers no parameter for.
        limits = httpx.Limits()  # httpx's defaults
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            retries=retries,
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=GuardedBackend(allowed),
        )

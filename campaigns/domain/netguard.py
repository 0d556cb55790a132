"""Which addresses a webhook may reach: the pure rules of the SSRF guard.

Refused unless the operator allows them (`WEBHOOK_ALLOWED_NETWORKS`): loopback, private,
link-local (and so cloud metadata at 169.254.169.254), carrier-grade NAT, multicast,
unspecified, reserved and documentation ranges, and IPv6 forms that embed one of those
(IPv4-mapped, 6to4, NAT64 …). The same check runs when an endpoint is saved and again on
the address actually connected to, so a name that later resolves elsewhere (DNS rebinding)
is caught at send time.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from urllib.parse import urlsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# Not covered by the `is_*` properties of the ipaddress module, yet never a public receiver.
_EXTRA_BLOCKED = [
    ipaddress.ip_network(n)
    for n in (
        "0.0.0.0/8",
        "100.64.0.0/10",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "240.0.0.0/4",
        "255.255.255.255/32",
        "64:ff9b::/96",
        "64:ff9b:1::/48",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
    )
]


def parse_networks(text: str | Iterable[str] | None) -> tuple[Network, ...]:
    """`"127.0.0.0/8, ::1/128"` → networks; raises ValueError naming a bad entry."""
    if not text:
        return ()
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        try:
            out.append(ipaddress.ip_network(item, strict=False))
        except ValueError as err:
            raise ValueError(f"WEBHOOK_ALLOWED_NETWORKS: {item!r} is not a network ({err})") from None
    return tuple(out)


def _embedded_v4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip.teredo is not None:
        return ip.teredo[1]
    return None


def blocked_reason(ip: IPAddress, allowed: tuple[Network, ...] = ()) -> str | None:
    """Why `ip` may not be reached, or None if it may."""
    if any(ip.version == n.version and ip in n for n in allowed):
        return None
    if isinstance(ip, ipaddress.IPv6Address):
        inner = _embedded_v4(ip)
        if inner is not None:
            reason = blocked_reason(inner, allowed)
            return f"{reason} (embedded in {ip})" if reason else None
    for label, flag in (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("private", ip.is_private),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("reserved", ip.is_reserved),
    ):
        if flag:
            return f"{ip} is a {label} address"
    if any(ip.version == n.version and ip in n for n in _EXTRA_BLOCKED):
        return f"{ip} is in a reserved range"
    if not ip.is_global:
        return f"{ip} is not a public address"
    return None


def check_url_shape(url: str) -> str:
    """Only absolute http(s) URLs with a host, no credentials, no fragment."""
    if len(url) > 2000:
        raise ValueError("URL longer than 2000 characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        raise ValueError(f"not a valid URL: {err}") from None
    if parts.scheme not in ("http", "https"):
        raise ValueError("must be an http:// or https:// URL")
    if not parts.hostname:
        raise ValueError("must name a host")
    if parts.username or parts.password:
        raise ValueError("must not carry credentials (use a custom header instead)")
    if parts.fragment:
        raise ValueError("must not have a #fragment")
    if port == 0:
        raise ValueError("port 0 is not a port")
    if any(c.isspace() for c in url):
        raise ValueError("must not contain whitespace")
    return url


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None

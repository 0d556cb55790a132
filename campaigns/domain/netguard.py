"""Which addresses a webhook may reach: the pure rules of the SSRF guard.

Refused unless the operator allows them (`WEBHOOK_ALLOWED_NETWORKS`): loopback, private,
link-local (and so cloud metadata at 169.254.169.254), carrier-grade NAT, multicast,
unspecified, reserved and documentation ranges, and IPv6 forms that embed one of those
(IPv4-mapped, 6to4, NAT64 …). The same check runs when an endpoint is saved and again on
the address actually connected to, so a name that later resolves elsewhere (DNS rebinding)
is caught at send time.

Every check starts from the host exactly as the HTTP client will see it (`client_host`):
yarl, which aiohttp parses URLs with, maps hosts through IDNA/UTS-46, so fullwidth,
"segmented" or mathematical digits and ideographic full stops become an ASCII dotted quad
there, whatever the URL looked like. A host that then reads as a number, in any spelling
the resolver accepts (`2130706433`, `0x7f.1`, `127.1`, `0177.0.0.1`, a trailing dot, an
IPv6 zone id), is checked as the address it names (`host_address`). The sender checks the
address it actually connects to as well, so a spelling missed here still gets nowhere.

What a tenant is told is only `REFUSED`: the address a name resolved to, or which kind of
internal range it is in, is not theirs to learn.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from urllib.parse import urlsplit

import yarl

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


REFUSED = "refused: private/internal address"

# WHATWG's "ends in a number": a last label of decimal digits or 0x-hex reads as an IPv4
# address to resolvers and browsers alike, so such a host is an address or it is nothing.
_NUMERIC_LABEL = re.compile(r"[0-9]+|0[xX][0-9a-fA-F]*")


def client_host(url: str) -> str:
    """The host of `url` as aiohttp connects to it: through yarl's IDNA/UTS-46 mapping
    (NFKC, so any Unicode spelling of digits and dots becomes ASCII), lower-cased, IPv6
    compressed and without brackets. Raises ValueError if the client could not use it."""
    try:
        host = yarl.URL(url).raw_host
    except (ValueError, UnicodeError) as err:
        raise ValueError(f"the host is not a valid name ({err})") from None
    if not host:
        raise ValueError("must name a host")
    return host


def host_address(host: str) -> IPAddress | None:
    """The address `host` (as `client_host` gives it) names when it is written as one, or
    None for a name to resolve. Raises ValueError for a host that looks like an address
    and is not one (`999.1.1.1`, `1.2.3.4.5`), which no resolver should be asked about."""
    bare = host.strip("[]").split("%", 1)[0]  # an IPv6 zone id does not change the address
    if ":" in bare:
        try:
            return ipaddress.IPv6Address(bare)
        except ValueError:
            raise ValueError("the host is not a valid IPv6 address") from None
    bare = bare.rstrip(".")  # "127.0.0.1." is the same address to a resolver
    last = bare.rsplit(".", 1)[-1]
    if not _NUMERIC_LABEL.fullmatch(last):
        return None
    try:
        # The C library's own reading of a numeric host (what getaddrinfo uses): decimal,
        # octal and hex parts, and the one- to three-part short forms.
        return ipaddress.IPv4Address(socket.inet_aton(bare))
    except (OSError, ValueError):
        raise ValueError("the host looks like an IP address but is not a valid one") from None


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
    host = client_host(url)
    if "%" in host and ":" not in host:  # in an IPv6 host it is the zone id
        raise ValueError("the host must not be percent-encoded")
    host_address(host)
    return url


def literal_ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None

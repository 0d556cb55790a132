"""Properties of the pure guards over generated input: the URL guard over hosts spelled
every way an address can be (Unicode digits and dots, numeric IPv4 forms, IPv6 forms,
IDNA), and the output-path validator of integration templates against rendering.

The URL oracle is independent of the guard: yarl reads the host (as aiohttp will), then
the C library reads it as a number, without DNS (`AI_NUMERICHOST`), as the resolver would.
"""

from __future__ import annotations

import ipaddress
import socket

import yarl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from campaigns.domain import integrations, netguard

FEW = settings(deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Digits IDNA (NFKC) maps to ASCII ones: fullwidth, mathematical bold / double-struck /
# sans-serif / sans-serif bold / monospace, segmented. And some it does not map (other
# scripts' Nd digits), which must never become an address by accident.
_MAPPED_ZEROS = [0xFF10, 0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1FBF0]
_UNMAPPED_ZEROS = [0x0660, 0x06F0, 0x0966, 0x09E6, 0x0E50]
_DOTS = [".", "\u3002", "\uff0e", "\uff61"]

_BLOCKED_NETS = ["127.0.0.0/8", "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "169.254.0.0/16",
                 "100.64.0.0/10", "0.0.0.0/8", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4"]
_PUBLIC = ["8.8.8.8", "93.184.216.34", "1.1.1.1", "151.101.1.69"]


@st.composite
def ipv4(draw) -> ipaddress.IPv4Address:
    if draw(st.booleans()):
        net = ipaddress.ip_network(draw(st.sampled_from(_BLOCKED_NETS)))
        return net[draw(st.integers(0, net.num_addresses - 1))]
    return ipaddress.IPv4Address(draw(st.sampled_from(_PUBLIC)))


def _number(draw, value: int) -> str:
    form = draw(st.sampled_from(["dec", "oct", "hex", "HEX"]))
    if form == "oct":
        return "0" + format(value, "o")
    if form == "hex":
        return "0x" + format(value, "x")
    if form == "HEX":
        return "0X" + format(value, "X")
    return str(value)


@st.composite
def spelled_ipv4(draw) -> str:
    """An IPv4 address in one of the numeric forms resolvers accept, with Unicode digits
    and dots mixed in, maybe a trailing dot."""
    address = int(draw(ipv4()))
    parts_count = draw(st.sampled_from([4, 3, 2, 1]))
    octets = list(address.to_bytes(4, "big"))
    head, tail = octets[: parts_count - 1], int.from_bytes(bytes(octets[parts_count - 1:]), "big")
    parts = [_number(draw, n) for n in [*head, tail]]
    text = ""
    for i, part in enumerate(parts):
        if i:
            text += draw(st.sampled_from(_DOTS))
        for ch in part:
            if ch.isdigit() and draw(st.integers(0, 3)) == 0:
                zero = draw(st.sampled_from(_MAPPED_ZEROS + _UNMAPPED_ZEROS[:1]))
                ch = chr(zero + int(ch))
            text += ch
    if draw(st.integers(0, 5)) == 0:
        text += draw(st.sampled_from(_DOTS))
    return text


@st.composite
def spelled_ipv6(draw) -> str:
    v4 = draw(ipv4())
    form = draw(st.sampled_from(["mapped", "mapped-hex", "nat64", "6to4", "compat", "loopback", "link-local"]))
    text = {
        "mapped": f"::ffff:{v4}",
        "mapped-hex": str(ipaddress.IPv6Address(b"\0" * 10 + b"\xff\xff" + v4.packed)),
        "nat64": f"64:ff9b::{v4}",
        "6to4": str(ipaddress.IPv6Address(b"\x20\x02" + v4.packed + b"\0" * 10)),
        "compat": f"::{v4}",
        "loopback": "0:0:0:0:0:0:0:1",
        "link-local": "fe80::1",
    }[form]
    if draw(st.booleans()):
        text = text.upper()
    if draw(st.booleans()):
        text += "%25" + draw(st.sampled_from(["eth0", "lo", "1"]))
    return f"[{text}]"


_labels = st.text(alphabet=st.sampled_from("abcxyz09-"), min_size=1, max_size=8)
idna_names = st.lists(st.one_of(_labels, st.sampled_from(["bücher", "пример", "xn--nxasmq6b", "例え"])),
                      min_size=1, max_size=3).map(".".join)

hosts = st.one_of(spelled_ipv4(), spelled_ipv6(), idna_names)


def _oracle(url: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The address the client would connect to without asking DNS, or None."""
    try:
        raw = yarl.URL(url).raw_host
    except (ValueError, UnicodeError):
        return None
    if not raw:
        return None
    try:
        infos = socket.getaddrinfo(raw, None, flags=socket.AI_NUMERICHOST, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return None
    return ipaddress.ip_address(str(infos[0][4][0]).split("%")[0])


def _refused(url: str) -> bool:
    """What the API refuses before any DNS: the shape checks, then the host read as an address."""
    try:
        netguard.check_url_shape(url)
        address = netguard.host_address(netguard.client_host(url))
    except ValueError:
        return True
    return address is not None and netguard.blocked_reason(address) is not None


@FEW
@given(hosts)
def test_no_spelling_of_an_internal_address_passes(host: str):
    url = f"http://{host}:8080/hook"
    address = _oracle(url)
    if address is not None and netguard.blocked_reason(address) is not None:
        assert _refused(url), (url, address)


@FEW
@given(hosts)
def test_the_guard_reads_a_numeric_host_as_the_resolver_does(host: str):
    url = f"https://{host}/"
    address = _oracle(url)
    try:
        ours = netguard.host_address(netguard.client_host(url))
    except ValueError:
        return  # refused outright: stricter than the resolver is fine
    if address is not None:
        assert ours == address, (url, ours, address)


@FEW
@given(spelled_ipv4())
def test_a_host_of_digits_and_dots_is_an_address_or_refused(host: str):
    """Whatever the mix of scripts, such a host never goes to DNS as a name."""
    url = f"http://{host}/"
    try:
        client_host = netguard.client_host(url)
        if all(c.isdigit() or c == "." for c in client_host):
            assert netguard.host_address(client_host) is not None
    except ValueError:
        pass


# --- Output paths: validated as a tree ----------------------------------------------------------

_segments = st.sampled_from(["a", "b", "a-x", "a_b", "event", "c1"])
_paths = st.lists(_segments, min_size=1, max_size=3).map(".".join)


@FEW
@given(st.lists(_paths, min_size=1, max_size=6, unique=True), st.booleans())
def test_the_validator_accepts_exactly_what_renders(paths: list[str], include_event: bool):
    mapping = {p: "type" for p in paths}
    try:
        integrations.HttpPushConfig.model_validate({"fieldMapping": mapping, "includeEvent": include_event})
        accepted = True
    except ValueError:
        accepted = False
    unchecked = integrations.HttpPushConfig.model_construct(field_mapping=mapping, include_event=include_event)
    event = {"type": "lead.created", "data": {}}
    try:
        body = integrations.render_http_push(unchecked, event)
        rendered = True
    except integrations.PathConflict:
        rendered = False
    assert accepted == rendered, (paths, include_event)
    if rendered:
        for path in paths:  # every mapped value is where its path says
            node = body
            for part in path.split("."):
                node = node[part]
            assert node == "lead.created"

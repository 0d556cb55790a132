"""The SSRF guard against every spelling of an internal address, as an attacker with one
API key would try them: refused when a webhook or integration is saved, and refused at
send time for one saved before (or past) the checks, before any byte reaches the target.

127.0.0.2 stands for the internal service: it is reachable on this machine, and outside
the networks the tests allow (127.0.0.1/32 and ::1). The cloud-metadata address is only
ever checked, never connected to.
"""

from __future__ import annotations

import uuid

import httpx
import pytest
from aiohttp.resolver import ThreadedResolver

from campaigns.domain import netguard
from campaigns.webhooks import sender as sender_module
from campaigns.webhooks.sender import Sender
from tests.support.campaigns import fields
from tests.support.receiver import Answer, Receiver
from tests.support.webhooks import wait_deliveries

# 127.0.0.2, as a URL host, in spellings the HTTP client (or the resolver) reads as that address.
INTERNAL_SPELLINGS = [
    "\U0001fbf1\U0001fbf2\U0001fbf7.\U0001fbf0.\U0001fbf0.\U0001fbf2",  # segmented digits
    "\uff11\uff12\uff17\uff0e\uff10\uff0e\uff10\uff0e\uff12",  # fullwidth digits and full stops
    "127\u30020\u30020\u30022",  # ideographic full stop
    "127\uff610\uff610\uff612",  # halfwidth ideographic full stop
    "\U0001d7cf\U0001d7d0\U0001d7d5.\U0001d7ce.\U0001d7ce.\U0001d7d0",  # mathematical bold digits
    "\uff11\uff12\uff17.0x0.0.2",  # fullwidth and hex together
    "2130706434",  # one decimal number
    "0x7f.2",  # hex, short form
    "127.2",  # short form
    "0177.0.0.2",  # octal
    "127.0.0.2.",  # trailing dot
    "[::ffff:127.0.0.2]",  # IPv4-mapped IPv6
]
# Never connected to: only saved, and refused.
METADATA_SPELLINGS = [
    "\U0001fbf1\U0001fbf6\U0001fbf9.\U0001fbf2\U0001fbf5\U0001fbf4.\U0001fbf1\U0001fbf6\U0001fbf9.\U0001fbf2\U0001fbf5\U0001fbf4",
    "\uff11\uff16\uff19\u3002\uff12\uff15\uff14\u3002\uff11\uff16\uff19\u3002\uff12\uff15\uff14",
    "2852039166",
    "0xa9.0xfe.0xa9.0xfe",
    "0251.0376.0251.0376",
    "169.254.43518",
    "[::ffff:169.254.169.254]",
    "[fe80::1%25eth0]",  # an IPv6 zone id
]
MALFORMED = [
    ("%31%32%37.0.0.2", "percent-encoded"),
    ("999.0.0.2", "not a valid one"),
    ("127.0.0.2.0.1", "not a valid one"),
]


def _kinds(campaign: dict) -> list[tuple[str, dict]]:
    return [
        (f"/api/campaigns/{campaign['id']}/webhooks", {"eventTypes": ["lead.created"]}),
        (f"/api/campaigns/{campaign['id']}/integrations",
         {"type": "slack", "name": "Ops", "eventTypes": ["lead.created"]}),
    ]


@pytest.mark.parametrize("host", INTERNAL_SPELLINGS + METADATA_SPELLINGS)
async def test_any_spelling_of_an_internal_address_is_refused_when_saved(api: httpx.AsyncClient, campaign: dict,
                                                                          host: str):
    for base, body in _kinds(campaign):
        r = await api.post(base, json={**body, "url": f"http://{host}:8080/x"})
        assert r.status_code == 400, (host, r.text)
        assert fields(r)["url"].startswith(netguard.REFUSED), fields(r)
        # The tenant learns that it is refused, not what the host turned out to be.
        assert "127.0.0.2" not in r.text and "169.254" not in r.text
    # And when changed to one.
    ok = (await api.post(_kinds(campaign)[0][0], json={"url": "https://example.com/hook",
                                                        "eventTypes": ["lead.created"]})).json()["webhook"]
    r = await api.put(f"{_kinds(campaign)[0][0]}/{ok['id']}", json={"url": f"http://{host}/x"})
    assert r.status_code == 400 and fields(r)["url"].startswith(netguard.REFUSED), r.text


@pytest.mark.parametrize(("host", "words"), MALFORMED)
async def test_hosts_that_only_look_like_addresses_are_refused(api: httpx.AsyncClient, campaign: dict, host, words):
    r = await api.post(_kinds(campaign)[0][0], json={"url": f"http://{host}/x", "eventTypes": ["lead.created"]})
    assert r.status_code == 400, r.text
    assert words in fields(r)["url"], fields(r)


@pytest.fixture
async def internal() -> Receiver:
    """The internal service: answers with something no tenant may read."""
    r = await Receiver(lambda n, req: Answer(body=b'{"AccessKeyId": "internal-secret"}'), host="127.0.0.2").start()
    yield r
    await r.stop()


@pytest.mark.parametrize("host", INTERNAL_SPELLINGS)
async def test_a_saved_spelling_is_refused_at_send_time_before_a_byte_is_sent(
    api: httpx.AsyncClient, campaign: dict, pool, receiver: Receiver, internal: Receiver, host: str
):
    """The review's attack: custom headers, a URL that became an internal address after it
    was checked (here written straight into the table, as an endpoint saved before the
    guard knew the spelling), and `/test` to read the response in the delivery log."""
    for base, body in _kinds(campaign):
        r = await api.post(base, json={**body, "url": receiver.url, "headers": {"Metadata-Flavor": "Google"}})
        assert r.status_code == 201, r.text
        endpoint = r.json()["webhook" if "webhooks" in base else "integration"]
        # Saved in clear, as before credentials were encrypted (such rows are read as they are).
        await pool.execute("UPDATE webhook_endpoints SET url = $2, headers = $3, credentials_encrypted = false "
                           "WHERE id = $1", uuid.UUID(endpoint["id"]), f"http://{host}:{internal.port}/latest/meta-data/",
                           {"Metadata-Flavor": "Google"})
        item = f"{base}/{endpoint['id']}"
        assert (await api.post(f"{item}/test")).status_code == 202
        [delivery] = await wait_deliveries(api, item, count=1, status="failed")
        [attempt] = (await api.get(f"{item}/deliveries/{delivery['id']}")).json()["delivery"]["attemptLog"]
        assert attempt["errorClass"] == "blocked" and attempt["error"] == netguard.REFUSED, attempt
        assert attempt["responseExcerpt"] is None and attempt["statusCode"] is None
    assert internal.requests == [] and receiver.requests == []


async def test_the_address_connected_to_is_checked_whatever_the_resolver_said(receiver: Receiver, monkeypatch):
    """Neither layer after the resolver trusts it: with a resolver that filters nothing, the
    socket is refused for its address before connecting; and without that check too, the
    request is refused on the connection's peer before it is written."""
    url = f"http://localhost:{receiver.port}/hook"
    trusting = Sender(allowed=(), connect_timeout=2, total_timeout=2, resolver=ThreadedResolver())
    try:
        refused = await trusting.post(url, {}, b"{}")
        assert refused.error_class == "blocked" and refused.error == netguard.REFUSED
    finally:
        await trusting.aclose()
    monkeypatch.setattr(sender_module, "guarded_socket_factory", lambda allowed: None)
    peer_only = Sender(allowed=(), connect_timeout=2, total_timeout=2, resolver=ThreadedResolver())
    try:
        refused = await peer_only.post(url, {}, b"{}")
        assert refused.error_class == "blocked" and refused.error == netguard.REFUSED
    finally:
        await peer_only.aclose()
    assert receiver.requests == []
    # The same sender with the network allowed does deliver: the refusals were the guard's.
    allowed = Sender(allowed=netguard.parse_networks("127.0.0.1/32"), connect_timeout=2, total_timeout=2,
                     resolver=ThreadedResolver())
    try:
        assert (await allowed.post(url, {}, b"{}")).status_code == 200 and len(receiver.requests) == 1
    finally:
        await allowed.aclose()

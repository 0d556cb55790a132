"""The webhooks' pure rules (campaigns.domain.webhooks, netguard, integrations): event
filters, retry schedule, headers, the SSRF address rules and the integration renderers."""

from __future__ import annotations

import ipaddress
from datetime import UTC, datetime, timedelta

import pytest

from campaigns.domain import integrations, netguard
from campaigns.domain.webhooks import (
    RetryConfig,
    check_event_filter,
    check_headers,
    delivery_id,
    matches,
    message_id,
    next_delay,
)


@pytest.mark.parametrize(
    ("filters", "event", "wanted"),
    [
        (["campaign.*"], "campaign.activated", True),
        (["campaign.*"], "goal.achieved", False),
        (["campaign.paused"], "campaign.paused", True),
        (["campaign.paused"], "campaign.paused_x", False),
        (["goal.*", "lead.created"], "lead.created", True),
        (["*"], "ab_test.concluded", True),
        (["*"], "webhook.test", False),  # the ping goes only where it is asked for
        (["webhook.*"], "webhook.endpoint_disabled", True),
    ],
)
def test_filters_match_exact_names_and_prefixes(filters, event, wanted):
    assert matches(filters, event) is wanted


@pytest.mark.parametrize("value", ["campaign.*", "*", "campaign.activated", "ab_test.concluded", "budget.*"])
def test_known_filters_are_accepted(value):
    assert check_event_filter(value) == value


@pytest.mark.parametrize(
    ("value", "words"),
    [("campaign.activate", "not a known event"), ("nothing.*", "no event starts"), ("campaign", "not a known"),
     ("webhook.test", "only on request"), ("campaign.**", "not a known"), ("*.activated", "not a known")],
)
def test_unknown_filters_are_refused_with_a_reason(value, words):
    with pytest.raises(ValueError, match=words):
        check_event_filter(value)


def test_default_schedule_is_eight_attempts_over_about_a_day():
    config = RetryConfig()
    assert config.max_attempts == 8
    waits = [next_delay(n, config, 0.5) for n in range(1, config.max_attempts)]
    assert waits == sorted(waits)
    assert 20 * 3600 < sum(waits) < 28 * 3600


def test_jitter_stays_within_twenty_percent_and_retry_after_is_honoured():
    config = RetryConfig(initial_interval_seconds=10, backoff_coefficient=2, max_interval_seconds=100)
    assert next_delay(1, config, 0.0) == pytest.approx(8)
    assert next_delay(1, config, 0.999999) == pytest.approx(12, rel=1e-3)
    assert next_delay(10, config, 0.5) == pytest.approx(100)  # capped
    assert next_delay(1, config, 0.5, retry_after=60) == 60
    assert next_delay(1, config, 0.5, retry_after=10_000) == 100  # honoured up to the longest interval


def test_retry_config_refuses_an_inverted_range():
    with pytest.raises(ValueError, match="maxIntervalSeconds"):
        RetryConfig(initial_interval_seconds=100, max_interval_seconds=10)


@pytest.mark.parametrize(
    ("headers", "words"),
    [({"Webhook-Signature": "x"}, "cannot be overridden"), ({"Connection": "close"}, "cannot be overridden"),
     ({"Transfer-Encoding": "chunked"}, "cannot be overridden"), ({"Host": "evil"}, "cannot be overridden"),
     ({"X-A": "1", "x-a": "2"}, "twice"), ({"X Bad": "1"}, "not a valid header name"),
     ({"X-Evil": "a\r\nInjected: 1"}, "one line")],
)
def test_custom_headers_cannot_override_what_the_sender_owns(headers, words):
    with pytest.raises(ValueError, match=words):
        check_headers(headers)


def test_ids_derive_from_event_and_endpoint():
    a = delivery_id("8b8d3c3e-0000-4000-8000-000000000001", "8b8d3c3e-0000-4000-8000-000000000002")
    assert a == delivery_id("8b8d3c3e-0000-4000-8000-000000000001", "8b8d3c3e-0000-4000-8000-000000000002")
    assert a != delivery_id("8b8d3c3e-0000-4000-8000-000000000001", "8b8d3c3e-0000-4000-8000-000000000003")
    assert message_id(a).startswith("msg_")


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1", "0.0.0.0",
     "::1", "fe80::1", "fd00::1", "::ffff:10.0.0.1", "::ffff:127.0.0.1", "2002:a00:1::", "224.0.0.1",
     "198.18.0.1", "255.255.255.255"],
)
def test_internal_addresses_are_blocked(address):
    assert netguard.blocked_reason(ipaddress.ip_address(address)) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_public_addresses_pass(address):
    assert netguard.blocked_reason(ipaddress.ip_address(address)) is None


def test_operator_can_allow_ranges():
    allowed = netguard.parse_networks("127.0.0.0/8, 10.5.0.0/16")
    assert netguard.blocked_reason(ipaddress.ip_address("127.0.0.1"), allowed) is None
    assert netguard.blocked_reason(ipaddress.ip_address("10.5.1.1"), allowed) is None
    assert netguard.blocked_reason(ipaddress.ip_address("10.6.1.1"), allowed) is not None
    with pytest.raises(ValueError, match="WEBHOOK_ALLOWED_NETWORKS"):
        netguard.parse_networks("10.0.0.0/33")


@pytest.mark.parametrize(
    ("url", "words"),
    [("ftp://example.com/", "http"), ("http:///path", "host"), ("https://user:pw@example.com/", "credentials"),
     ("https://example.com/#frag", "fragment"), ("https://example.com:99999/", "valid URL")],
)
def test_url_shape(url, words):
    with pytest.raises(ValueError, match=words):
        netguard.check_url_shape(url)


EVENT = {
    "type": "lead.created", "timestamp": "2030-01-01T00:00:00Z", "id": "e1", "campaignId": "c1", "sequence": 7,
    "data": {"lead": {"email": "ana@example.com", "firstName": "Ana", "lastName": "Diaz", "score": 87}},
}


def test_http_push_maps_fields_into_nested_output():
    config = integrations.HttpPushConfig.model_validate({"fieldMapping": {
        "contact.email": "data.lead.email",
        "contact.name": "join(' ', [data.lead.firstName, data.lead.lastName])",
        "score": "data.lead.score",
        "source": "'quantum'",
        "missing": "data.nothing.here",
        "broken": "join(' ', data.lead.score)",  # a type error for this event: null, not a crash
    }})
    body = integrations.render_http_push(config, EVENT)
    assert body == {"contact": {"email": "ana@example.com", "name": "Ana Diaz"}, "score": 87, "source": "quantum",
                    "missing": None, "broken": None}


@pytest.mark.parametrize(
    ("config", "words"),
    [({"fieldMapping": {"a": "data.[["}}, "JMESPath"), ({"fieldMapping": {}}, "at least 1"),
     ({"fieldMapping": {"a b": "data"}}, "output path"), ({"fieldMapping": {"a": "x", "a.b": "y"}}, "parent")],
)
def test_http_push_mapping_is_validated(config, words):
    with pytest.raises(ValueError, match=words):
        integrations.HttpPushConfig.model_validate(config)


def test_slack_message_from_template_and_default():
    config = integrations.SlackConfig.model_validate({"template": "New lead {data.lead.email} ({data.lead.score})",
                                                      "channel": "#sales"})
    assert integrations.render_slack(config, EVENT) == {"text": "New lead ana@example.com (87)", "channel": "#sales"}
    default = integrations.render_slack(integrations.SlackConfig(), {**EVENT, "type": "campaign.paused",
                                                                      "data": {"name": "Spring"}})
    assert default == {"text": "Campaign *Spring* was paused."}
    with pytest.raises(ValueError, match="JMESPath"):
        integrations.SlackConfig.model_validate({"template": "{data.[[}"})


def test_timestamps_in_envelope_are_utc_iso():
    from campaigns.domain.webhooks import envelope

    body = envelope(event_id="e", type_="campaign.paused", occurred_at=datetime(2030, 1, 1, tzinfo=UTC) + timedelta(seconds=1),
                    data={}, sequence=3, campaign_id="c")
    assert body["timestamp"] == "2030-01-01T00:00:01Z" and body["sequence"] == 3


"""Webhooks, the pure part: the event catalogue, subscription filters, retry schedules
and the wire envelope.

No I/O here: the API, the dispatcher, the activity and the workflow all share it.
"""

from __future__ import annotations

import json
import re
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from campaigns.domain.base import ApiModel

# --- The event catalogue ---------------------------------------------------------------

EVENTS: dict[str, str] = {
    "campaign.created": "A campaign was created (as a draft).",
    "campaign.scheduled": "A campaign was activated with a start still ahead.",
    "campaign.activated": "A campaign went live (on request or at its scheduled start).",
    "campaign.paused": "A campaign was paused.",
    "campaign.resumed": "A paused campaign went live again.",
    "campaign.ended": "A campaign ended (on request or at its scheduled end).",
    "campaign.archived": "A campaign was archived.",
    "campaign.window_opened": "A calling window of the campaign's schedule opened.",
    "campaign.window_closed": "A calling window of the campaign's schedule closed.",
    "goal.achieved": "A campaign goal reached its target.",
    "budget.exhausted": "A campaign spent its total or daily budget.",
    "lead.created": "A call produced a qualified lead.",
    "ab_test.started": "An A/B test began assigning traffic to its variants.",
    "ab_test.concluded": "An A/B test reached a decision.",
    "webhook.endpoint_disabled": "An endpoint was disabled after failing too long or answering 410 Gone.",
    "webhook.test": "A test ping (POST …/webhooks/{webhookId}/test); sent only to that endpoint.",
}
# Sent only on request, never by subscription.
UNSUBSCRIBABLE = {"webhook.test"}

_EXACT = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")
_PREFIX = re.compile(r"[a-z][a-z0-9_]*\.\*")


def check_event_filter(value: str) -> str:
    """An exact event name from the catalogue, a `family.*` prefix of a known family, or `*`."""
    if value == "*":
        return value
    if _PREFIX.fullmatch(value):
        family = value[:-1]
        if not any(name.startswith(family) for name in EVENTS):
            raise ValueError(f"no event starts with {family!r}; known families: {sorted(_families())}")
        return value
    if _EXACT.fullmatch(value) and value in EVENTS and value not in UNSUBSCRIBABLE:
        return value
    if value in UNSUBSCRIBABLE:
        raise ValueError(f"{value!r} is sent only on request and cannot be subscribed to")
    raise ValueError(
        f"{value!r} is not a known event type or a 'family.*' prefix; known: {sorted(set(EVENTS) - UNSUBSCRIBABLE)}"
    )


def _families() -> set[str]:
    return {name.split(".")[0] + ".*" for name in EVENTS}


def matches(filters: list[str], event_type: str) -> bool:
    """Does a subscription to `filters` want `event_type`?"""
    if event_type in UNSUBSCRIBABLE:
        return False
    for f in filters:
        if f == "*" or f == event_type or (f.endswith(".*") and event_type.startswith(f[:-1])):
            return True
    return False


# --- Headers ---------------------------------------------------------------------------

# Hop-by-hop headers (RFC 9110 §7.6.1) and the ones the sender owns: a custom header may
# not change how the request is framed, routed or signed.
RESERVED_HEADERS = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "host",
        "content-length",
        "content-type",
        "content-encoding",
        "expect",
        "user-agent",
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
    }
)
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def _value_char_allowed(c: str) -> bool:
    # RFC 9110 field-value: visible ASCII, space, tab, and Latin-1 text (obs-text), without
    # the C1 controls. Anything else the HTTP client refuses, or a receiver may read as a
    # line break or a header of its own.
    return c == "\t" or " " <= c <= "~" or "\xa0" <= c <= "\xff"


def check_header_value(value: str) -> str:
    """One line of Latin-1 text a server reads as it was meant: no control characters (CR,
    LF, NUL, DEL, \\x01 …), nothing beyond Latin-1, at most 2000 characters."""
    if not isinstance(value, str) or len(value) > 2000:
        raise ValueError("must be text of at most 2000 characters")
    bad = next((c for c in value if not _value_char_allowed(c)), None)
    if bad is not None:
        what = "a control character" if bad.isascii() or "\x80" <= bad <= "\x9f" else "a character beyond Latin-1"
        raise ValueError(f"contains {what} (U+{ord(bad):04X}); header values are one line of visible Latin-1 text")
    return value


def check_headers(headers: dict[str, str]) -> dict[str, str]:
    if len(headers) > 20:
        raise ValueError("at most 20 custom headers")
    seen: set[str] = set()
    for name, value in headers.items():
        lower = name.lower()
        if not _TOKEN.fullmatch(name) or len(name) > 100:
            raise ValueError(f"{name!r} is not a valid header name")
        if lower in RESERVED_HEADERS:
            raise ValueError(f"{name!r} is set by the sender and cannot be overridden")
        if lower in seen:
            raise ValueError(f"{name!r} is given twice (header names are case-insensitive)")
        seen.add(lower)
        try:
            check_header_value(value)
        except ValueError as err:
            raise ValueError(f"the value of {name!r} {err}") from None
    return headers


# --- Retries ---------------------------------------------------------------------------


class RetryConfig(ApiModel):
    """How a failed delivery is retried. The defaults make 8 attempts over about a day:
    after 30 s, 2 min, 8 min, 32 min, ~2 h, ~8.5 h and 12 h (each ±20% jitter)."""

    max_attempts: Annotated[int, Field(ge=1, le=20)] = 8
    initial_interval_seconds: Annotated[float, Field(ge=0.1, le=86_400)] = 30.0
    backoff_coefficient: Annotated[float, Field(ge=1.0, le=10.0)] = 4.0
    max_interval_seconds: Annotated[float, Field(ge=0.1, le=7 * 86_400)] = 12 * 3600.0
    disable_after_seconds: Annotated[float, Field(ge=1, le=30 * 86_400)] | None = Field(
        default=None,
        description="Disable the endpoint when it has failed without a success for this long "
        "(default: the server's WEBHOOK_DISABLE_AFTER_SECONDS, 5 days).",
    )

    @model_validator(mode="after")
    def _ordered(self) -> RetryConfig:
        if self.max_interval_seconds < self.initial_interval_seconds:
            raise ValueError("maxIntervalSeconds must not be less than initialIntervalSeconds")
        return self


JITTER = 0.2


def next_delay(attempt: int, config: RetryConfig, rand: float, retry_after: float | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based). `rand` in [0, 1) gives
    the jitter; a receiver's Retry-After is honoured up to the longest interval."""
    base = min(
        config.initial_interval_seconds * config.backoff_coefficient ** (attempt - 1), config.max_interval_seconds
    )
    delay = base * (1 - JITTER + 2 * JITTER * rand)
    if retry_after is not None and retry_after > 0:
        delay = max(delay, min(retry_after, config.max_interval_seconds))
    return max(0.05, delay)


# --- The wire --------------------------------------------------------------------------


def delivery_id(event_id: uuid.UUID | str, endpoint_id: uuid.UUID | str) -> uuid.UUID:
    """The one delivery of an event to an endpoint: the same id whoever computes it."""
    return uuid.uuid5(uuid.UUID(str(endpoint_id)), str(event_id))


def message_id(delivery: uuid.UUID | str) -> str:
    """The `webhook-id` header: the same on every attempt and redelivery."""
    return "msg_" + uuid.UUID(str(delivery)).hex


def envelope(
    *,
    event_id: str,
    type_: str,
    occurred_at: datetime,
    data: dict[str, Any],
    sequence: int | None,
    campaign_id: str | None,
) -> dict[str, Any]:
    """The Standard Webhooks body: `{type, timestamp, data}`, plus the event's id and its
    per-campaign sequence number so receivers can de-duplicate and order."""
    return {
        "type": type_,
        "timestamp": occurred_at.isoformat().replace("+00:00", "Z"),
        "data": data,
        "id": event_id,
        "campaignId": campaign_id,
        "sequence": sequence,
    }


def dumps(body: Any) -> str:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, default=str)


# `render_failed`: the endpoint's template could not make a body for the event (no attempt
# is made; the delivery fails alone). `unexpected`: any other failure of an attempt.
# `expired`: the delivery was older than WEBHOOK_MAX_DELIVERY_AGE_S, so it was given up.
ErrorClass = Literal[
    "dns",
    "connect",
    "timeout",
    "tls",
    "blocked",
    "http",
    "payload_too_large",
    "render_failed",
    "unexpected",
    "expired",
]


def throttle_delay(throttled: int, rand: float) -> float:
    """How long an attempt that found the endpoint's concurrency limit reached waits before
    asking again: growing, so a long backlog does not churn, and jittered, so the waiters
    do not ask all at once."""
    return min(10.0, 0.25 * 2**throttled) * (0.5 + rand)


# --- Showing credentials -----------------------------------------------------------------
# A receiver's header values and an integration's URL (a Slack webhook URL is its own
# credential) are shown masked once saved: enough to recognise, never enough to use.

MASK = "****"


def mask(value: str) -> str:
    """`****` and the last four characters (only the mark for a value too short to spare them)."""
    return MASK + value[-4:] if len(value) >= 12 else MASK


def mask_url(url: str) -> str:
    """`https://hooks.slack.com/…/****abcd`: the scheme and host, not the path or query."""
    scheme, _, rest = url.partition("://")
    host, slash, tail = rest.partition("/")
    host = host.rpartition("@")[2]
    return f"{scheme}://{host}/…/{mask(tail)}" if slash or tail else f"{scheme}://{host}"

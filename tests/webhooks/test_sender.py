"""The sender's reading of a receiver's answer."""

from __future__ import annotations

from datetime import UTC, datetime

from campaigns.webhooks.sender import retry_after_seconds


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert retry_after_seconds("120") == 120
    assert retry_after_seconds("Tue, 01 Jan 2030 00:01:00 GMT", now) == 60
    assert retry_after_seconds("soon") is None
    assert retry_after_seconds(None) is None

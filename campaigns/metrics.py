"""The Prometheus registry every process's metrics live in, and its text rendering.

Each module defines its own metrics against `REGISTRY`; the API serves them at `/metrics`.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

REGISTRY = CollectorRegistry()


def render() -> tuple[bytes, str]:
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST

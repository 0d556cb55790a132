"""Connecting to Temporal, the same way in the API, the worker and the CLI."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from campaigns.settings import Settings


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    """A client with the pydantic converter every workflow and activity here expects.
    `lazy` defers the connection to the first call (the API starts while Temporal is down)."""
    return await Client.connect(
        settings.temporal_target,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        lazy=lazy,
    )

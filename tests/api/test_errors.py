"""Failures of a dependency are 503s, whichever library reports them."""

from __future__ import annotations

from temporalio.client import Client

from campaigns.api.errors import _is_dependency_down
from campaigns.stack.services import free_port


async def test_a_lazy_temporal_client_that_cannot_connect_is_a_dependency_down():
    client = await Client.connect(f"127.0.0.1:{free_port()}", lazy=True)  # nothing listens there
    try:
        await client.start_workflow("Nothing", id="nothing", task_queue="nowhere")
    except RuntimeError as err:
        assert _is_dependency_down(err)
    else:
        raise AssertionError("a client with no server to reach started a workflow")
    assert not _is_dependency_down(RuntimeError("some other bug"))

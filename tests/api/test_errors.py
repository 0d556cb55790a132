"""Failures of a dependency are 503s, whichever library reports them."""

from __future__ import annotations

import asyncpg
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


def _raised_while_handling(first: BaseException, then: BaseException) -> BaseException:
    try:
        try:
            raise first
        except BaseException:
            raise then  # noqa: B904 -- the implicit context is the point
    except BaseException as err:
        return err


def test_postgres_going_away_is_a_dependency_down_however_it_surfaces():
    # A backend told the postmaster died, a crash restart, a connection dropped mid-statement
    # whose reconnect was then refused: each is a 503 ("retry shortly"), never a 500.
    assert _is_dependency_down(asyncpg.exceptions.AdminShutdownError("terminating connection"))
    assert _is_dependency_down(asyncpg.exceptions.CrashShutdownError("crash"))
    assert _is_dependency_down(asyncpg.exceptions.CannotConnectNowError("starting up"))
    wrapped = _raised_while_handling(ConnectionRefusedError(111, "refused"), RuntimeError("pool gave up"))
    assert _is_dependency_down(wrapped)
    assert _is_dependency_down(ExceptionGroup("both", [ValueError("x"), ConnectionResetError()]))
    assert not _is_dependency_down(asyncpg.exceptions.UniqueViolationError("duplicate"))
    assert not _is_dependency_down(_raised_while_handling(KeyError("k"), ValueError("bug")))

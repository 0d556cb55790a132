"""The dispatcher: its fan-out of platform events to the endpoints that want them, and the
first attempt it makes itself (with the workflow taking over only after a failure)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from standardwebhooks.webhooks import Webhook
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from campaigns.domain.webhooks import delivery_id, dumps, envelope, message_id
from campaigns.messages.webhook_delivery import AttemptRequest, DeliveryInput, workflow_id
from campaigns.settings import Settings
from campaigns.stack.services import ServiceSpec
from campaigns.stack.supervisor import Supervisor
from campaigns.webhooks import repository as webhooks_repo
from campaigns.webhooks.attempts import Attempts, Claim
from campaigns.webhooks.dispatcher import Dispatcher, fan_out
from tests.support.receiver import Answer, Received, Receiver
from tests.support.webhooks import FAST_RETRY, DispatcherRunner, detail, record, subscribe, wait_deliveries, worker_env


def test_fan_out_respects_scope_filter_and_creation_time():
    org, other_org, camp, other_camp = (uuid.uuid4() for _ in range(4))
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    event = {"id": uuid.uuid4(), "organization_id": org, "campaign_id": camp, "seq": 4, "type": "lead.created",
             "data": {"leadId": "L"}, "occurred_at": t0, "recorded_at": t0}

    def endpoint(**kw):
        return {"id": uuid.uuid4(), "organization_id": org, "campaign_id": None, "kind": "webhook",
                "url": "https://example.com/", "event_types": ["lead.*"], "config": {},
                "created_at": t0 - timedelta(seconds=1), **kw}

    wanted = [endpoint(), endpoint(campaign_id=camp),
              endpoint(kind="slack", config={"template": "lead {data.leadId}"})]
    unwanted = [endpoint(campaign_id=other_camp), endpoint(event_types=["campaign.*"]),
                endpoint(organization_id=other_org), endpoint(created_at=t0 + timedelta(seconds=1))]
    rows = fan_out([event], wanted + unwanted)
    assert {r[1] for r in rows} == {e["id"] for e in wanted}
    bodies = {r[1]: json.loads(r[7]) for r in rows}
    assert bodies[wanted[0]["id"]]["sequence"] == 4 and bodies[wanted[2]["id"]] == {"text": "lead L"}
    assert all(r[0] == delivery_id(event["id"], r[1]) for r in rows)


# --- The direct first attempt ------------------------------------------------------------------
# The dispatcher makes each delivery's first attempt itself, holding a claim on the row; only a
# failure gets a workflow. These run against the session's dispatcher and real receivers.


async def _workflow_exists(client: Client, delivery_id: str) -> bool:
    try:
        await client.get_workflow_handle(workflow_id(delivery_id)).describe()
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def _attempt_rows(pool: asyncpg.Pool, endpoint_ids: list[str]) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT a.delivery_id, a.run, a.attempt FROM webhook_attempts a JOIN webhook_deliveries d "
        "ON d.id = a.delivery_id WHERE d.endpoint_id = ANY($1)", [uuid.UUID(e) for e in endpoint_ids])


@pytest.mark.services
async def test_a_first_attempt_that_succeeds_starts_no_workflow(api, campaign, pool, receiver: Receiver,
                                                               temporal_client):
    base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"])
    await record(pool, campaign, "lead.created")
    assert (await api.post(f"{base}/test")).status_code == 202  # a test ping is direct too
    delivered = await wait_deliveries(api, base, count=2, status="succeeded")
    for delivery in delivered:
        got = await detail(api, base, delivery)
        assert [(a["run"], a["attempt"], a["statusCode"]) for a in got["attemptLog"]] == [(0, 1, 200)]
        assert not await _workflow_exists(temporal_client, delivery["id"])
    assert len(receiver.requests) == 2
    Webhook(hook["secret"]).verify(receiver.requests[0].body, receiver.requests[0].headers)


@pytest.mark.services
async def test_a_failed_first_attempt_is_retried_by_its_workflow_with_the_same_webhook_id(
    api, campaign, pool, temporal_client
):
    receiver = await Receiver(lambda n, r: Answer(503, {"Retry-After": "1"}) if n == 1 else Answer()).start()
    try:
        base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"], retryConfig=FAST_RETRY)
        await record(pool, campaign, "lead.created")
        [delivery] = await wait_deliveries(api, base, count=1, status="succeeded")
        got = await detail(api, base, delivery)
        log = got["attemptLog"]
        assert [(a["attempt"], a["statusCode"], a["errorClass"]) for a in log] == [(1, 503, "http"), (2, 200, None)]
        # The hand-over kept the wait the failure asked for (Retry-After: 1 beats the 0.2 s backoff).
        waited = datetime.fromisoformat(log[1]["startedAt"]) - datetime.fromisoformat(log[0]["startedAt"])
        assert waited >= timedelta(seconds=0.95)
        assert {r.headers["webhook-id"] for r in receiver.requests} == {got["messageId"]}
        assert len(receiver.requests) == 2
        for request in receiver.requests:
            Webhook(hook["secret"]).verify(request.body, request.headers)

        # The workflow took over at attempt 2: the dispatcher made attempt 1.
        handle = temporal_client.get_workflow_handle(workflow_id(delivery["id"]))
        assert await handle.result() == "succeeded"
        started = (await handle.fetch_history()).events[0].workflow_execution_started_event_attributes
        [given] = await temporal_client.data_converter.decode(started.input.payloads, [DeliveryInput])
        assert given.attempt == 2 and given.not_before is not None
        assert await pool.fetchval("SELECT workflow_started FROM webhook_deliveries WHERE id = $1",
                                   uuid.UUID(delivery["id"]))
    finally:
        await receiver.stop()


@pytest.mark.services
async def test_a_claim_left_by_a_dead_dispatcher_is_taken_over_once_it_lapses(api, campaign, pool,
                                                                              receiver: Receiver):
    """Rows claimed by a dispatcher that then died (never attempted): another takes them over
    when their claims lapse, and each is delivered once."""
    base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"])
    rows = [await _delivery_row(campaign, hook) for _ in range(5)]
    async with pool.acquire() as conn:
        await webhooks_repo.insert_deliveries(conn, rows, claim=uuid.uuid4(), lease_s=2)
    held = await pool.fetchval("SELECT count(*) FROM webhook_deliveries WHERE endpoint_id = $1 "
                               "AND claimed_until > now() AND status = 'pending'", uuid.UUID(hook["id"]))
    assert held == 5  # claimed: nobody else touches them yet
    await wait_deliveries(api, base, count=5, status="succeeded")
    assert sorted(r.headers["webhook-id"] for r in receiver.requests) == sorted(message_id(r[0]) for r in rows)
    assert len(await _attempt_rows(pool, [hook["id"]])) == 5


async def _delivery_row(campaign: dict, hook: dict) -> tuple:
    event = uuid.uuid4()
    body = dumps(envelope(event_id=str(event), type_="lead.created", occurred_at=datetime.now(UTC), data={},
                          sequence=None, campaign_id=campaign["id"]))
    return (delivery_id(event, hook["id"]), uuid.UUID(hook["id"]), uuid.UUID(campaign["organizationId"]), None,
            "lead.created", uuid.UUID(campaign["id"]), None, body)


@pytest.mark.services
async def test_a_holder_whose_claim_was_taken_over_records_nothing(api, campaign, pool):
    """The fence: once another dispatcher holds a delivery, the old holder can neither record
    its attempt nor hand the delivery over."""
    _, hook = await subscribe(api, campaign, "http://127.0.0.1:9/", ["lead.created"])
    row = await _delivery_row(campaign, hook)
    old, new = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn:
        await webhooks_repo.insert_deliveries(conn, [row], claim=old, lease_s=600)
    await pool.execute("UPDATE webhook_deliveries SET claim = $2 WHERE id = $1", row[0], new)  # taken over

    async def deliver(claim: uuid.UUID) -> bool:
        return await webhooks_repo.record_delivered(
            pool, delivery_id=row[0], endpoint_id=row[1], run=0, attempt=1, started_at=datetime.now(UTC),
            latency_ms=1.0, status_code=200, excerpt="ok", claim=claim)

    assert not await deliver(old)
    async with pool.acquire() as conn, conn.transaction():
        assert not await webhooks_repo.hold(conn, delivery_id=row[0], run=0, claim=old)
    assert await pool.fetchval("SELECT count(*) FROM webhook_attempts WHERE delivery_id = $1", row[0]) == 0
    assert await pool.fetchval("SELECT status FROM webhook_deliveries WHERE id = $1", row[0]) == "pending"
    assert await deliver(new)
    assert await pool.fetchval("SELECT status FROM webhook_deliveries WHERE id = $1", row[0]) == "succeeded"


@pytest.mark.services
async def test_a_hand_over_left_unstarted_by_a_crash_is_started_by_the_sweep(api, campaign, pool,
                                                                             receiver: Receiver, temporal_client):
    """A dispatcher that dies after recording a failed first attempt (and the hand-over) and
    before starting the workflow: the sweep, in any worker, starts it at attempt 2."""
    base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"])
    row = await _delivery_row(campaign, hook)
    async with pool.acquire() as conn, conn.transaction():
        await webhooks_repo.insert_deliveries(conn, [row], claim=uuid.uuid4(), lease_s=600)
        await webhooks_repo.record_attempt(conn, delivery_id=row[0], run=0, attempt=1, started_at=datetime.now(UTC),
                                           latency_ms=1.0, status_code=500, excerpt="boom", error_class="http",
                                           error="HTTP 500", retry_after_s=None)
        await webhooks_repo.update_delivery(conn, delivery_id=row[0], run=0, status="pending", attempts=1,
                                            status_code=500, error_class="http", error="HTTP 500",
                                            next_attempt_at=datetime.now(UTC), start_within_s=0)
    [request] = await receiver.wait_for(1, within=30)
    assert request.headers["webhook-id"] == message_id(row[0])
    [delivery] = await wait_deliveries(api, base, count=1, status="succeeded")
    log = (await detail(api, base, delivery))["attemptLog"]
    assert [(a["attempt"], a["statusCode"]) for a in log] == [(1, 500), (2, 200)]
    assert await temporal_client.get_workflow_handle(workflow_id(row[0])).result() == "succeeded"
    assert await pool.fetchval("SELECT workflow_started FROM webhook_deliveries WHERE id = $1", row[0])


@pytest.mark.services
async def test_two_dispatchers_deliver_each_delivery_once(api, campaign, pool, settings: Settings, temporal_client,
                                                          redis_client, dispatcher, receiver: Receiver):
    """Two dispatchers side by side, racing for new events and for lapsed claims: every
    delivery is sent once and has one attempt, and no endpoint ever has more requests in
    flight than it allows."""
    inflight: dict[str, int] = {}
    peak: dict[str, int] = {}
    slow = Answer(delay=0.05)

    def answer(n: int, request: Received) -> Answer:
        return slow

    class Counting(Receiver):
        async def __call__(self, scope, receive, send):
            path = scope.get("path", "")
            if scope["type"] == "http":
                inflight[path] = inflight.get(path, 0) + 1
                peak[path] = max(peak.get(path, 0), inflight[path])
            try:
                await super().__call__(scope, receive, send)
            finally:
                if scope["type"] == "http":
                    inflight[path] -= 1

    counting = await Counting(answer).start()
    second = DispatcherRunner(lambda: Dispatcher(temporal_client, pool, settings, redis_client))
    second.start()
    try:
        hooks = [(await subscribe(api, campaign, f"{counting.url}/{i}", ["lead.created"], maxConcurrency=3))
                 for i in range(8)]
        lapsed = [await _delivery_row(campaign, hook) for _, hook in hooks for _ in range(3)]
        async with pool.acquire() as conn:
            await webhooks_repo.insert_deliveries(conn, lapsed, claim=uuid.uuid4(), lease_s=-1)  # due at once
        await asyncio.gather(*(record(pool, campaign, "lead.created", {"n": n}) for n in range(12)))
        expected = len(hooks) * 12 + len(lapsed)
        for base, _ in hooks:
            await wait_deliveries(api, base, count=12 + 3, status="succeeded", within=60)
        ids = [r.headers["webhook-id"] for r in counting.requests]
        assert len(ids) == len(set(ids)) == expected
        attempts = await _attempt_rows(pool, [hook["id"] for _, hook in hooks])
        assert len(attempts) == expected and {(a["run"], a["attempt"]) for a in attempts} == {(0, 1)}
        assert max(peak.values()) <= 3
    finally:
        await second.stop()
        await counting.stop()


@pytest.mark.slow  # fault injection: a worker process started and killed, about 20 s
async def test_a_sender_killed_mid_attempt_is_attempted_again_once_its_claim_lapses(
    api, campaign, pool, settings: Settings, dispatcher
):
    """The worker process making a first attempt is killed (SIGKILL) while the receiver holds
    the request. Its claim stays until it lapses; then a surviving dispatcher attempts the
    delivery again, with the same webhook-id, and records it once."""
    receiver = await Receiver(lambda n, r: Answer(delay=60) if n == 1 else Answer()).start()
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    sup = Supervisor(restart=False)
    await dispatcher.stop()  # the doomed worker's dispatcher alone takes the event
    try:
        base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"])
        doomed = await sup.start(ServiceSpec(
            name="doomed-worker", argv=[sys.executable, "-m", "campaigns.cli", "worker"],
            env=worker_env(settings, queue), log_file=settings.data_dir / "logs" / f"{queue}.log"))
        await record(pool, campaign, "lead.created")
        [held] = await receiver.wait_for(1, within=60)
        os.kill(doomed.process.pid, signal.SIGKILL)
        await doomed.process.wait()
        claim = await pool.fetchrow("SELECT status, attempts, claimed_until FROM webhook_deliveries "
                                    "WHERE endpoint_id = $1", uuid.UUID(hook["id"]))
        assert claim["status"] == "pending" and claim["attempts"] == 0

        dispatcher.start()  # a surviving worker's
        [_, again] = await receiver.wait_for(2, within=60)
        assert again.at >= claim["claimed_until"].timestamp()  # not before the dead holder's claim lapsed
        assert again.headers["webhook-id"] == held.headers["webhook-id"] and again.body == held.body
        [delivery] = await wait_deliveries(api, base, count=1, status="succeeded")
        log = (await detail(api, base, delivery))["attemptLog"]
        assert [(a["run"], a["attempt"], a["statusCode"]) for a in log] == [(0, 1, 200)]
        assert len(receiver.requests) == 2
    finally:
        if dispatcher.task is None:
            dispatcher.start()
        await sup.stop()
        await receiver.stop()


@pytest.mark.services
async def test_a_claim_too_short_for_a_whole_attempt_is_given_back_unused(api, campaign, pool, settings: Settings,
                                                                         redis_client, receiver: Receiver):
    """A delivery that waited for a sender until its claim could lapse mid-attempt is not
    sent by that sender: it goes back, due at once, and a dispatcher sends it once."""
    base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"])
    row = await _delivery_row(campaign, hook)
    token = uuid.uuid4()
    async with pool.acquire() as conn:
        await webhooks_repo.insert_deliveries(conn, [row], claim=token, lease_s=600)
    attempts = Attempts(pool, settings, redis_client)
    try:
        [claimed] = await webhooks_repo.deliveries_for_attempt(pool, [row[0]])
        nearly_lapsed = Claim(token, asyncio.get_running_loop().time() + settings.webhook_timeout_s)
        outcome = await attempts.attempt(claimed, AttemptRequest(delivery_id=str(row[0]), run=0, attempt=1),
                                         nearly_lapsed)
        assert outcome.final and outcome.status == "pending" and receiver.requests == []
    finally:
        await attempts.aclose()
    [delivery] = await wait_deliveries(api, base, count=1, status="succeeded")
    assert [(a["attempt"], a["statusCode"]) for a in (await detail(api, base, delivery))["attemptLog"]] == [(1, 200)]
    assert len(receiver.requests) == 1

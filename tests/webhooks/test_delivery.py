"""Delivery end to end, to real local receivers: signatures, fan-out, retries, failures of
every kind, rotation, replay and a worker killed between attempts."""

from __future__ import annotations

import asyncio
import os
import sys
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from campaigns.domain import netguard
from campaigns.domain.webhooks import dumps, envelope
from campaigns.messages.webhook_delivery import workflow_id
from campaigns.settings import Settings
from campaigns.stack.services import ServiceSpec
from campaigns.stack.supervisor import Supervisor
from campaigns.webhooks import repository as webhooks_repo
from campaigns.webhooks.dispatcher import Dispatcher
from campaigns.webhooks.sender import Sender
from campaigns.webhooks.workflow_client import Pending, start_one
from campaigns.worker import build_worker
from tests.support.polling import eventually
from tests.support.receiver import Answer, Receiver
from tests.support.webhooks import FAST_RETRY, detail, record, subscribe, wait_deliveries, worker_env

# Every test here sends to real receivers on local ports, even those that need nothing else.
pytestmark = pytest.mark.services




# --- The wire ----------------------------------------------------------------------------------


async def test_deliveries_are_signed_the_standard_webhooks_way(api, campaign, receiver: Receiver):
    base, hook = await subscribe(api, campaign, receiver.url, ["campaign.activated", "campaign.paused"],
                                 headers={"X-Tenant": "acme"})
    assert (await api.post(f"/api/campaigns/{campaign['id']}/activate")).status_code == 200
    assert (await api.post(f"/api/campaigns/{campaign['id']}/pause")).status_code == 200
    got = await receiver.wait_for(2)
    verifier = Webhook(hook["secret"])
    bodies = []
    for request in got:
        body = verifier.verify(request.body, request.headers)  # raises unless the signature is right
        bodies.append(body)
        assert request.headers["x-tenant"] == "acme"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["webhook-id"].startswith("msg_")
        assert set(body) >= {"type", "timestamp", "data", "sequence", "id", "campaignId"}
        assert body["timestamp"].endswith("Z") and body["campaignId"] == campaign["id"]
    assert sorted(b["type"] for b in bodies) == ["campaign.activated", "campaign.paused"]
    by_type = {b["type"]: b for b in bodies}
    # The per-campaign sequence lets a receiver order events that arrive out of order.
    assert by_type["campaign.activated"]["sequence"] < by_type["campaign.paused"]["sequence"]
    assert by_type["campaign.paused"]["data"]["status"] == "paused"
    with pytest.raises(WebhookVerificationError):
        Webhook(hook["secret"]).verify(got[0].body + b" ", got[0].headers)

    items = await wait_deliveries(api, base, count=2, status="succeeded")
    one = await detail(api, base, items[0])
    assert one["messageId"] in {r.headers["webhook-id"] for r in got}
    assert one["payload"]["type"] == one["eventType"]
    [attempt] = one["attemptLog"]
    assert attempt["statusCode"] == 200 and attempt["errorClass"] is None and attempt["latencyMs"] >= 0
    assert attempt["responseExcerpt"] == "ok"


async def test_filters_scopes_and_events_recorded_outside_workflows(api, make_api, pool, receiver: Receiver):
    other_receiver = await Receiver().start()
    try:
        _, org_hook = await subscribe(api, None, other_receiver.url, ["lead.*", "campaign.paused"])
        a = (await api.post("/api/campaigns", json={"name": "A", "type": "outbound", "channel": "phone",
                                                     "flowId": "f"})).json()["campaign"]
        b = (await api.post("/api/campaigns", json={"name": "B", "type": "outbound", "channel": "phone",
                                                     "flowId": "f"})).json()["campaign"]
        await subscribe(api, a, receiver.url, ["campaign.paused"])
        await api.post(f"/api/campaigns/{a['id']}/activate")
        await api.post(f"/api/campaigns/{a['id']}/pause")
        lead = await record(pool, b, "lead.created", {"leadId": "L1"})
        await record(pool, b, "goal.achieved")  # wanted by no one
        # Another organization's events never reach these endpoints.
        stranger = await make_api()
        c = (await stranger.post("/api/campaigns", json={"name": "C", "type": "outbound", "channel": "phone",
                                                          "flowId": "f"})).json()["campaign"]
        await record(pool, c, "lead.created")

        await receiver.wait_for(1)
        org_got = await other_receiver.wait_for(2)
        await asyncio.sleep(0.5)  # anything unwanted would have arrived by now
        assert [r.json()["type"] for r in receiver.requests] == ["campaign.paused"]
        assert receiver.requests[0].json()["campaignId"] == a["id"]
        assert sorted((r.json()["type"], r.json()["campaignId"]) for r in org_got) == [
            ("campaign.paused", a["id"]), ("lead.created", b["id"])]
        assert any(r.json()["id"] == lead for r in org_got)
        assert len(other_receiver.requests) == 2 and org_hook["campaignId"] is None
    finally:
        await other_receiver.stop()


async def test_test_ping(api, campaign, receiver: Receiver):
    base, hook = await subscribe(api, None, receiver.url, ["campaign.*"])
    r = await api.post(f"{base}/test")
    assert r.status_code == 202, r.text
    assert r.json()["delivery"]["eventType"] == "webhook.test"
    [request] = await receiver.wait_for(1)
    body = Webhook(hook["secret"]).verify(request.body, request.headers)
    assert body["type"] == "webhook.test" and body["data"]["webhookId"] == hook["id"]
    await wait_deliveries(api, base, count=1, status="succeeded")


# --- Retries and failures ------------------------------------------------------------------------


async def test_retries_until_success_honouring_retry_after(api, campaign, pool):
    answers = {1: Answer(500, body=b"boom"), 2: Answer(503, {"Retry-After": "1"})}
    receiver = await Receiver(lambda n, r: answers.get(n, Answer())).start()
    try:
        base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"], retryConfig=FAST_RETRY)
        await record(pool, campaign, "lead.created")
        [delivery] = await wait_deliveries(api, base, count=1, status="succeeded")
        got = await detail(api, base, delivery)
        log = got["attemptLog"]
        assert [(a["attempt"], a["statusCode"], a["errorClass"]) for a in log] == [
            (1, 500, "http"), (2, 503, "http"), (3, 200, None)]
        assert log[0]["responseExcerpt"] == "boom" and log[1]["retryAfterSeconds"] == 1
        waited = datetime.fromisoformat(log[2]["startedAt"]) - datetime.fromisoformat(log[1]["startedAt"])
        assert waited >= timedelta(seconds=0.95)  # Retry-After: 1 beats the 0.3 s backoff
        assert got["attempts"] == 3 and got["lastStatusCode"] == 200
        # The same message id on every attempt; a fresh timestamp and signature on each.
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        assert len(receiver.requests) == 3
    finally:
        await receiver.stop()


async def test_a_receiver_down_then_back_loses_nothing(api, campaign, pool):
    receiver = Receiver()  # not listening yet
    base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"],
                                 retryConfig={**FAST_RETRY, "maxAttempts": 10})
    events = [await record(pool, campaign, "lead.created", {"n": n}) for n in range(3)]
    await eventually(lambda: _count_attempts(pool, hook["id"], 3), "first failed attempts")
    await receiver.start()
    try:
        await wait_deliveries(api, base, count=3, status="succeeded")
        assert sorted(r.json()["id"] for r in receiver.requests) == sorted(events)  # each once, none lost
        first = (await detail(api, base, (await wait_deliveries(api, base, count=3))[0]))["attemptLog"][0]
        assert first["errorClass"] == "connect" and first["statusCode"] is None
    finally:
        await receiver.stop()


async def _count_attempts(pool, hook_id: str, at_least: int) -> bool:
    n = await pool.fetchval(
        "SELECT count(*) FROM webhook_attempts a JOIN webhook_deliveries d ON d.id = a.delivery_id "
        "WHERE d.endpoint_id = $1", uuid.UUID(hook_id))
    return n >= at_least


async def test_410_disables_the_endpoint_and_tells_the_owner(api, campaign, pool):
    gone = await Receiver(lambda n, r: Answer(410)).start()
    watcher = await Receiver().start()
    try:
        await subscribe(api, None, watcher.url, ["webhook.*"])
        base, hook = await subscribe(api, campaign, gone.url, ["lead.created"], retryConfig=FAST_RETRY)
        await record(pool, campaign, "lead.created")
        [delivery] = await wait_deliveries(api, base, count=1, status="failed")
        assert (await detail(api, base, delivery))["attemptLog"][0]["statusCode"] == 410
        state = (await api.get(base)).json()["webhook"]
        assert state["state"] == "disabled" and state["disabledReason"] == "gone" and state["enabled"] is False
        [notice] = await watcher.wait_for(1)
        body = notice.json()
        assert body["type"] == "webhook.endpoint_disabled"
        assert body["data"]["webhookId"] == hook["id"] and body["data"]["reason"] == "gone"
        # A disabled endpoint gets nothing more.
        await record(pool, campaign, "lead.created")
        await asyncio.sleep(0.5)
        assert len(gone.requests) == 1
        # Re-enabled, it receives again.
        assert (await api.put(base, json={"enabled": True})).json()["webhook"]["state"] == "active"
    finally:
        await gone.stop()
        await watcher.stop()


async def test_a_redirect_is_a_failed_attempt(api, campaign, pool):
    receiver = await Receiver(lambda n, r: Answer(302, {"Location": "http://127.0.0.1:9/elsewhere"})).start()
    try:
        base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"],
                                  retryConfig={**FAST_RETRY, "maxAttempts": 1})
        await record(pool, campaign, "lead.created")
        [delivery] = await wait_deliveries(api, base, count=1, status="failed")
        [attempt] = (await detail(api, base, delivery))["attemptLog"]
        assert attempt["statusCode"] == 302 and attempt["errorClass"] == "http"
        assert "redirect" in attempt["error"]
        assert len(receiver.requests) == 1 and receiver.requests[0].path == "/hook"
    finally:
        await receiver.stop()


async def test_a_slow_receiver_times_out(api, campaign, pool):
    receiver = await Receiver(lambda n, r: Answer(delay=6)).start()  # the tests' limit is 3 s
    try:
        base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"],
                                  retryConfig={**FAST_RETRY, "maxAttempts": 1})
        await record(pool, campaign, "lead.created")
        [delivery] = await wait_deliveries(api, base, count=1, status="failed")
        got = await detail(api, base, delivery)
        assert got["lastErrorClass"] == "timeout"
        assert got["attemptLog"][0]["errorClass"] == "timeout" and got["attemptLog"][0]["statusCode"] is None
    finally:
        await receiver.stop()


async def test_an_endpoint_failing_too_long_is_disabled(api, campaign, pool):
    receiver = await Receiver(lambda n, r: Answer(500)).start()
    try:
        base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"],
                                  retryConfig={**FAST_RETRY, "maxAttempts": 20, "disableAfterSeconds": 1})
        await record(pool, campaign, "lead.created")
        [delivery] = await wait_deliveries(api, base, count=1, status="failed")
        state = (await api.get(base)).json()["webhook"]
        assert state["state"] == "disabled" and state["disabledReason"] == "failing"
        assert 2 <= (await detail(api, base, delivery))["attempts"] < 20
        events = await pool.fetch("SELECT data FROM platform_events WHERE type = 'webhook.endpoint_disabled' "
                                  "AND campaign_id = $1", uuid.UUID(campaign["id"]))
        assert [e["data"]["reason"] for e in events] == ["failing"]
    finally:
        await receiver.stop()


async def test_per_endpoint_concurrency_limit(api, campaign, pool):
    inflight, peak = 0, 0

    class Counting(Receiver):
        async def __call__(self, scope, receive, send):
            nonlocal inflight, peak
            if scope["type"] == "http":
                inflight += 1
                peak = max(peak, inflight)
            try:
                await super().__call__(scope, receive, send)
            finally:
                if scope["type"] == "http":
                    inflight -= 1

    receiver = await Counting(lambda n, r: Answer(delay=0.3)).start()
    try:
        base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"], maxConcurrency=2)
        for n in range(6):
            await record(pool, campaign, "lead.created", {"n": n})
        await wait_deliveries(api, base, count=6, status="succeeded", within=30)
        assert peak <= 2 and len(receiver.requests) == 6
    finally:
        await receiver.stop()


async def test_payload_cap(api, campaign, pool, receiver: Receiver, settings: Settings):
    base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"])
    await record(pool, campaign, "lead.created", {"notes": "x" * settings.webhook_max_payload_bytes})
    [delivery] = await wait_deliveries(api, base, count=1, status="failed")
    assert (await detail(api, base, delivery))["lastErrorClass"] == "payload_too_large"
    assert receiver.requests == []


# --- Secrets -------------------------------------------------------------------------------------


async def test_during_rotation_both_secrets_sign(api, campaign, pool, receiver: Receiver):
    base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"])
    old = hook["secret"]
    new = (await api.post(f"{base}/rotate-secret", json={"gracePeriodSeconds": 3600})).json()["webhook"]["secret"]
    await record(pool, campaign, "lead.created")
    [first] = await receiver.wait_for(1)
    assert len(first.headers["webhook-signature"].split(" ")) == 2
    Webhook(old).verify(first.body, first.headers)  # receivers not yet switched still accept
    Webhook(new).verify(first.body, first.headers)  # and switched ones too
    # Ending the grace period: only the newest secret signs.
    newest = (await api.post(f"{base}/rotate-secret", json={"gracePeriodSeconds": 0})).json()["webhook"]["secret"]
    await record(pool, campaign, "lead.created")
    second = (await receiver.wait_for(2))[1]
    Webhook(newest).verify(second.body, second.headers)
    for stale in (old, new):
        with pytest.raises(WebhookVerificationError):
            Webhook(stale).verify(second.body, second.headers)


# --- Replay --------------------------------------------------------------------------------------


async def test_redeliver_sends_the_same_message_again(api, campaign, pool, receiver: Receiver):
    base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"])
    await record(pool, campaign, "lead.created")
    [delivery] = await wait_deliveries(api, base, count=1, status="succeeded")
    r = await api.post(f"{base}/deliveries/{delivery['id']}/redeliver")
    assert r.status_code == 202, r.text
    assert r.json()["delivery"]["run"] == 1 and r.json()["delivery"]["status"] == "pending"
    await receiver.wait_for(2)
    await eventually(lambda: _status(api, base, delivery["id"], "succeeded"), "redelivery")
    got = await detail(api, base, delivery)
    assert [(a["run"], a["attempt"]) for a in got["attemptLog"]] == [(0, 1), (1, 1)]
    first, again = receiver.requests
    assert first.headers["webhook-id"] == again.headers["webhook-id"] and first.body == again.body
    Webhook(hook["secret"]).verify(again.body, again.headers)


async def _waiting_to_retry(client, wid: str) -> bool:
    """The workflow has recorded its wait for the next attempt (so a kill cannot undo attempt 1)."""
    events = [e async for e in client.get_workflow_handle(wid).fetch_history_events()]
    return any(e.HasField("timer_started_event_attributes") for e in events)


async def _status(api, base, delivery_id, status) -> bool:
    return (await api.get(f"{base}/deliveries/{delivery_id}")).json()["delivery"]["status"] == status


async def test_redeliver_refuses_a_delivery_still_in_progress(api, campaign, pool):
    receiver = await Receiver(lambda n, r: Answer(500)).start()
    try:
        base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"],
                                  retryConfig={"maxAttempts": 5, "initialIntervalSeconds": 3600,
                                               "maxIntervalSeconds": 3600})
        await record(pool, campaign, "lead.created")
        await receiver.wait_for(1)
        [delivery] = await wait_deliveries(api, base, count=1, status="pending")
        r = await api.post(f"{base}/deliveries/{delivery['id']}/redeliver")
        assert r.status_code == 409 and r.json()["code"] == "delivery_in_progress"
        await api.delete(base)  # the pending retry finds no endpoint and stops
    finally:
        await receiver.stop()


async def test_recover_resends_every_failed_delivery_since(api, campaign, pool):
    healthy = False
    receiver = await Receiver(lambda n, r: Answer(200 if healthy else 500)).start()
    try:
        base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"],
                                  retryConfig={**FAST_RETRY, "maxAttempts": 2})
        since = datetime.now(UTC) - timedelta(seconds=1)
        events = [await record(pool, campaign, "lead.created", {"n": n}) for n in range(3)]
        await wait_deliveries(api, base, count=3, status="failed")
        healthy = True
        r = await api.post(f"{base}/recover", json={"since": since.isoformat()})
        assert r.status_code == 202, r.text
        assert r.json()["recovered"] == 3
        done = await wait_deliveries(api, base, count=3, status="succeeded")
        assert {d["run"] for d in done} == {1}
        assert sorted({r.json()["id"] for r in receiver.requests}) == sorted(events)
        # Nothing failed is left in the window; a second recovery finds nothing.
        assert (await api.post(f"{base}/recover", json={"since": since.isoformat()})).json()["recovered"] == 0
    finally:
        await receiver.stop()


# --- The SSRF guard at connect time ------------------------------------------------------------------


async def test_connect_time_guard_refuses_what_resolves_inside(receiver: Receiver):
    """The check runs on the address actually connected to: a name that resolves to loopback
    (as a rebinding attack would arrange) is refused at send time, before any byte is sent."""
    strict = Sender(allowed=(), connect_timeout=2, total_timeout=2)
    permissive = Sender(allowed=netguard.parse_networks("127.0.0.0/8"), connect_timeout=2, total_timeout=2)
    try:
        url = f"http://localhost:{receiver.port}/hook"
        refused = await strict.post(url, {"content-type": "application/json"}, b"{}")
        assert refused.error_class == "blocked" and refused.error == "refused: private/internal address"
        assert receiver.requests == []
        allowed = await permissive.post(url, {"content-type": "application/json"}, b"{}")
        assert allowed.status_code == 200 and len(receiver.requests) == 1
        unresolvable = await strict.post("http://no-such-host.invalid/", {}, b"{}")
        assert unresolvable.error_class == "dns"
        refused_port = await permissive.post("http://127.0.0.1:9/", {}, b"{}")
        assert refused_port.error_class == "connect"
    finally:
        await strict.aclose()
        await permissive.aclose()


async def test_tls_failures_are_classified(receiver: Receiver):
    """https to a server that speaks plain HTTP: the handshake fails, classed `tls`."""
    sender = Sender(allowed=netguard.parse_networks("127.0.0.0/8"), connect_timeout=2, total_timeout=2)
    try:
        result = await sender.post(f"https://127.0.0.1:{receiver.port}/hook", {}, b"{}")
        assert result.error_class == "tls", result
        assert receiver.requests == []
    finally:
        await sender.aclose()


# --- Durability ----------------------------------------------------------------------------------


@pytest.mark.slow  # fault injection: a worker process started and killed, about 15 s
async def test_a_worker_killed_between_attempts_loses_nothing(api, campaign, pool, settings: Settings,
                                                              temporal_client, redis_client):
    """A delivery on a queue served by a worker process that is killed (SIGKILL) while it
    waits to retry: another worker picks the workflow up and the retry happens, once."""
    healthy = False
    receiver = await Receiver(lambda n, r: Answer(200 if healthy else 500)).start()
    queue = f"kill-{uuid.uuid4().hex[:8]}"
    isolated = settings.model_copy(update={"temporal_task_queue": queue})
    sup = Supervisor(restart=False)
    try:
        base, hook = await subscribe(api, campaign, receiver.url, ["lead.created"],
                                     retryConfig={**FAST_RETRY, "initialIntervalSeconds": 3, "maxIntervalSeconds": 3})
        # A delivery of our own, started on the isolated queue (the ping path: no event needed).
        delivery_id = uuid.uuid4()
        body = dumps(envelope(event_id=str(delivery_id), type_="webhook.test", occurred_at=datetime.now(UTC),
                              data={}, sequence=None, campaign_id=campaign["id"]))
        await webhooks_repo.insert_delivery(pool, delivery_id=delivery_id, endpoint_id=uuid.UUID(hook["id"]),
                                            organization_id=uuid.UUID(campaign["organizationId"]),
                                            event_type="webhook.test", campaign_id=uuid.UUID(campaign["id"]), body=body,
                                            direct=False)
        # Its workflow is ours to start (on the isolated queue), not the sweep's.
        await pool.execute("UPDATE webhook_deliveries SET workflow_started = true WHERE id = $1", delivery_id)
        env = worker_env(settings, queue, WEBHOOK_DISPATCHER="false")
        doomed = await sup.start(ServiceSpec(name="doomed-worker", argv=[sys.executable, "-m", "campaigns.cli", "worker"],
                                             env=env, log_file=settings.data_dir / "logs" / f"{queue}.log"))
        assert await start_one(temporal_client, isolated, Pending(delivery_id, 0, "webhook.test", uuid.uuid4()))
        await receiver.wait_for(1, within=30)  # attempt 1 made by the doomed worker, answered 500
        await eventually(lambda: _count_attempts(pool, hook["id"], 1), "attempt 1 recorded")
        await eventually(lambda: _waiting_to_retry(temporal_client, workflow_id(delivery_id)), "retry timer")
        os.kill(doomed.process.pid, 9)
        await doomed.process.wait()
        healthy = True
        replacement = build_worker(temporal_client, pool, queue, settings=isolated, redis=redis_client)
        async with replacement:
            await eventually(lambda: _status(api, base, str(delivery_id), "succeeded"), "retry after kill", within=40)
        got = (await api.get(f"{base}/deliveries/{delivery_id}")).json()["delivery"]
        assert [(a["attempt"], a["statusCode"]) for a in got["attemptLog"]] == [(1, 500), (2, 200)]
        assert len(receiver.requests) == 2
    finally:
        await sup.stop()
        await receiver.stop()


async def test_finished_deliveries_are_forgotten_after_the_retention(api, campaign, pool, settings, temporal_client,
                                                                    redis_client):
    _, hook = await subscribe(api, campaign, "http://127.0.0.1:9/", ["lead.created"])
    ids = []
    for age_days in (45, 1):
        delivery_id = uuid.uuid4()
        await webhooks_repo.insert_delivery(pool, delivery_id=delivery_id, endpoint_id=uuid.UUID(hook["id"]),
                                            organization_id=uuid.UUID(campaign["organizationId"]),
                                            event_type="webhook.test", campaign_id=None, body="{}")
        await pool.execute("UPDATE webhook_deliveries SET status = 'succeeded', workflow_started = true, "
                           "completed_at = now() - make_interval(days => $2) WHERE id = $1", delivery_id, age_days)
        ids.append(delivery_id)
    assert await Dispatcher(temporal_client, pool, settings, redis_client).prune() >= 1
    left = {r["id"] for r in await pool.fetch("SELECT id FROM webhook_deliveries WHERE id = ANY($1)", ids)}
    assert left == {ids[1]}


async def test_histories_replay_deterministically(api, campaign, pool, temporal_client):
    """Replaying recorded histories (a retry included) with the current code must not diverge."""
    from temporalio.worker import Replayer

    from campaigns.workflows.webhook_delivery import WebhookDeliveryWorkflow

    receiver = await Receiver(lambda n, r: Answer(500) if n == 1 else Answer()).start()
    try:
        base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"], retryConfig=FAST_RETRY)
        await record(pool, campaign, "lead.created")
        [delivery] = await wait_deliveries(api, base, count=1, status="succeeded")
        handle = temporal_client.get_workflow_handle(workflow_id(delivery["id"]))
        await handle.result()
        history = await handle.fetch_history()
        replayer = Replayer(workflows=[WebhookDeliveryWorkflow], data_converter=temporal_client.data_converter)
        await replayer.replay_workflow(history)
    finally:
        await receiver.stop()


async def test_campaign_created_reaches_organization_wide_webhooks(api, receiver: Receiver):
    _, hook = await subscribe(api, None, receiver.url, ["campaign.created"])
    created = (await api.post("/api/campaigns", json={"name": "New", "type": "inbound", "channel": "web",
                                                       "flowId": "f"})).json()["campaign"]
    [request] = await receiver.wait_for(1)
    body = Webhook(hook["secret"]).verify(request.body, request.headers)
    assert body["type"] == "campaign.created" and body["campaignId"] == created["id"] and body["sequence"] == 1


async def test_an_attempt_that_finds_no_free_slot_waits_without_counting(api, campaign, pool):
    """With one slot and a receiver slower than an attempt waits for a slot, the second
    delivery is handed back to its workflow, waits, and is sent as attempt 1 all the same."""
    receiver = await Receiver(lambda n, r: Answer(delay=2.5)).start()
    try:
        base, _ = await subscribe(api, campaign, receiver.url, ["lead.created"], maxConcurrency=1)
        for n in range(2):
            await record(pool, campaign, "lead.created", {"n": n})
        done = await wait_deliveries(api, base, count=2, status="succeeded", within=40)
        assert sorted(d["attempts"] for d in done) == [1, 1] and len(receiver.requests) == 2
        first, second = sorted(r.at for r in receiver.requests)
        assert second - first >= 2.4  # one at a time
    finally:
        await receiver.stop()

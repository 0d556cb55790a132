"""Contract fuzzing: schemathesis generates requests from the whole OpenAPI document, valid
and invalid, and every answer must be one the document promises: no server error, a
documented status, the documented content type and a body that fits its schema.

It runs against an app of its own in this process (schemathesis drives ASGI apps on an
event loop of its own, so the app is made there, with its own pool and clients; the
session's worker runs on the test's loop, left free while the fuzzing runs in a thread).
Path ids are real objects of the test's organization half the time, so operations are
exercised past their 404s. Derandomized (a fixed seed) and bounded: the same cases on
every run.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import Unsatisfiable
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.generation import GenerationMode

from campaigns.api.app import create_app
from tests.support.abtests import TEST
from tests.support.analytics import call, send
from tests.support.receiver import Receiver
from tests.support.webhooks import FAST_RETRY

EXAMPLES = {GenerationMode.POSITIVE: 50, GenerationMode.NEGATIVE: 25}
CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
# An endless response: its contract is tested in tests/analytics/test_api.py.
SKIPPED = {("GET", "/api/campaigns/{id}/analytics/stream")}


async def real_ids(api: httpx.AsyncClient, receiver_url: str) -> dict[str, str]:
    """Objects of the organization for path parameters: a campaign with a test, a webhook
    with a delivery, an integration, a widget."""
    created = await api.post(
        "/api/campaigns", json={"name": "Fuzzed", "type": "outbound", "channel": "phone", "flowId": "f"}
    )
    campaign = created.json()["campaign"]
    cid = campaign["id"]
    assert (await api.post(f"/api/campaigns/{cid}/activate")).status_code == 200
    await send(api, call(cid, lead=80))
    test = await api.post(f"/api/campaigns/{cid}/ab-test", json=TEST)
    assert test.status_code == 201, test.text
    hook = await api.post(
        f"/api/campaigns/{cid}/webhooks", json={"url": receiver_url, "eventTypes": ["*"], "retryConfig": FAST_RETRY}
    )
    assert hook.status_code == 201, hook.text
    webhook_id = hook.json()["webhook"]["id"]
    ping = await api.post(f"/api/campaigns/{cid}/webhooks/{webhook_id}/test")
    integration = await api.post(
        f"/api/campaigns/{cid}/integrations",
        json={"type": "http_push", "name": "crm", "url": receiver_url, "eventTypes": ["lead.*"],
              "config": {"fieldMapping": {"lead": "data"}}},
    )
    assert integration.status_code == 201, integration.text
    widget = (await api.get(f"/api/campaigns/{cid}/widget")).json()["widget"]
    return {
        "id": cid,
        "campaignId": cid,
        "testId": test.json()["test"]["id"],
        "webhookId": webhook_id,
        "deliveryId": ping.json()["delivery"]["id"],
        "integrationId": integration.json()["integration"]["id"],
        "key": widget["publishableKey"],
    }


def runner(strategy: Any, count: int, headers: dict[str, str], sent: dict[str, int], mode: str) -> Any:
    @settings(
        max_examples=count,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy)
    def run(case: Any) -> None:
        sent[mode] += 1
        case.call_and_validate(headers=headers, checks=CHECKS)

    return run


def fuzz(schema: Any, key: str, ids: dict[str, str]) -> tuple[list[str], dict[str, int]]:
    """Run every operation; return the failures and how many cases each mode sent."""
    failures: list[str] = []
    sent = {mode.value: 0 for mode in EXAMPLES}
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIPPED:
            continue
        public = operation.path.startswith("/embed") or not operation.path.startswith("/api")
        headers = {} if public else {"Authorization": f"Bearer {key}"}
        for mode, count in EXAMPLES.items():

            def real(case: Any, use: bool) -> Any:
                if use and case.path_parameters:
                    for name in case.path_parameters:
                        if name in ids:
                            case.path_parameters[name] = ids[name]
                if use and operation.path.startswith("/embed") and isinstance(case.query, dict):
                    case.query["key"] = ids["key"]
                return case

            strategy = st.tuples(operation.as_strategy(generation_mode=mode), st.booleans()).map(lambda t: real(*t))
            run = runner(strategy, count, headers, sent, mode.value)
            try:
                run()
            except Unsatisfiable:
                pass  # nothing to make invalid (an operation without parameters)
            except (Exception, BaseExceptionGroup) as err:  # noqa: BLE001 - every failure is collected and reported
                failures.append(f"{operation.method.upper()} {operation.path} ({mode.value}): {err}"[:3000])
    return failures, sent


@pytest.mark.slow
async def test_every_operation_keeps_its_contract(settings, worker, api: httpx.AsyncClient):
    receiver = await Receiver().start()
    try:
        ids = await real_ids(api, receiver.url)
        app = create_app(settings)
        started = time.monotonic()

        def run() -> tuple[list[str], dict[str, int], int]:
            schema = schemathesis.openapi.from_asgi("/openapi.json", app)
            operations = sum(1 for _ in schema.get_all_operations())
            return (*fuzz(schema, api.key, ids), operations)

        failures, sent, operations = await asyncio.to_thread(run)
        elapsed = time.monotonic() - started
        print(f"\nschemathesis: {operations} operations, cases sent {sent}, {elapsed:.0f} s, {len(failures)} failures")
        assert operations >= 80
        assert not failures, "\n\n".join(failures)
    finally:
        await receiver.stop()

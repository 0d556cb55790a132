"""The dispatcher's fan-out of platform events to the endpoints that want them."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

from campaigns.domain.webhooks import delivery_id
from campaigns.webhooks.dispatcher import fan_out


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

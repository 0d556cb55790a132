"""The campaigns API: every endpoint's happy path and its bad input."""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest

from tests.support.campaigns import CAMPAIGN, fields

# --- Create ------------------------------------------------------------------------------


async def test_create_returns_a_draft_with_defaults(api: httpx.AsyncClient):
    r = await api.post("/api/campaigns", json={**CAMPAIGN, "timezone": "Europe/Paris"})
    assert r.status_code == 201
    c = r.json()["campaign"]
    assert r.headers["location"] == f"/api/campaigns/{c['id']}"
    assert c["status"] == "draft"
    assert c["timezone"] == "Europe/Paris"
    assert c["voiceSettings"]["speakingRate"] == 1.0
    assert [k["metric"] for k in c["kpis"]] == ["connectRate", "conversionRate", "costPerLead", "callsPerHour"]
    assert c["performance"]["totalCalls"] == 0 and c["performance"]["conversionRate"] == 0
    assert c["costTracking"]["totalCost"] == 0 and c["costTracking"]["byCategory"]["llm"] == 0
    assert r.headers["etag"] == f'W/"{c["version"]}"'


async def test_default_kpis_depend_on_type(api: httpx.AsyncClient):
    inbound = (await api.post("/api/campaigns", json={**CAMPAIGN, "type": "inbound"})).json()["campaign"]
    assert "answerRate" in [k["metric"] for k in inbound["kpis"]]
    custom = (
        await api.post(
            "/api/campaigns",
            json={**CAMPAIGN, "kpis": [{"name": "Leads", "metric": "totalCalls", "target": 10}]},
        )
    ).json()["campaign"]
    assert [k["name"] for k in custom["kpis"]] == ["Leads"] and custom["kpis"][0]["id"]


async def test_create_with_a_full_configuration(api: httpx.AsyncClient):
    body = {
        **CAMPAIGN,
        "description": "Q2 outreach",
        "timezone": "America/New_York",
        "knowledgeBaseIds": ["kb-1", "kb-2"],
        "voiceSettings": {
            "ttsVoice": "aura-2-celeste-es",
            "speakingRate": 0.9,
            "speakingStyle": "calm",
            "language": "es-ES",
            "maxCallDuration": 900,
            "qualificationThreshold": 60,
            "handoffTriggers": [
                {"type": "keyword", "value": "human", "action": "transfer_to_agent", "target": "+15551234567"},
                {"type": "duration", "value": 600, "action": "end_call"},
            ],
            "customGreeting": "Hola",
            "fallbackGreetings": ["Buenas"],
        },
        "targetAudience": {
            "demographics": {"ageRange": {"min": 25, "max": 60}, "languages": ["es-ES"]},
            "geographic": {"countries": ["us", "MX"], "regions": ["us-ca"], "radius": {"latitude": 40.7,
                           "longitude": -74, "radiusKm": 50}},
            "behavioral": {"engagementLevels": ["high"], "lastInteractionWithinDays": 30},
            "customAttributes": {"segment": "gold", "score": 7},
            "exclusionRules": [{"field": "doNotCall", "operator": "eq", "value": True}],
        },
        "schedule": {"startAt": "2030-01-01T09:00:00", "endAt": "2030-02-01T18:00:00",
                     "windows": {"monday": ["09:00-12:00", "13:00-17:00"], "friday": ["22:00-02:00"]},
                     "blackoutDates": ["2030-01-15"]},
        "budget": {"total": 5000, "daily": 200, "currency": "usd"},
        "goals": [{"type": "leads", "target": 500, "timeframe": "weekly"}],
    }
    r = await api.post("/api/campaigns", json=body)
    assert r.status_code == 201, r.text
    c = r.json()["campaign"]
    assert c["targetAudience"]["geographic"]["countries"] == ["US", "MX"]
    assert c["targetAudience"]["geographic"]["regions"] == ["US-CA"]
    assert c["budget"]["currency"] == "USD"
    assert c["goals"][0]["id"] and c["goals"][0]["current"] == 0 and c["goals"][0]["achieved"] is False
    assert c["costTracking"]["budgetTotal"] == 5000 and c["costTracking"]["budgetRemaining"] == 5000
    got = (await api.get(f"/api/campaigns/{c['id']}")).json()["campaign"]
    assert got["schedule"]["windows"]["friday"] == ["22:00-02:00"]
    assert got["voiceSettings"]["handoffTriggers"][0]["target"] == "+15551234567"


@pytest.mark.parametrize(
    ("patch", "field", "words"),
    [
        ({"voiceSettings": {"speakingRate": 1.5}}, "voiceSettings.speakingRate", "1.2"),
        ({"voiceSettings": {"speakingRate": 0.5}}, "voiceSettings.speakingRate", "0.8"),
        ({"voiceSettings": {"qualificationThreshold": 101}}, "voiceSettings.qualificationThreshold", "100"),
        ({"voiceSettings": {"qualificationThreshold": -1}}, "voiceSettings.qualificationThreshold", "0"),
        ({"voiceSettings": {"language": "english"}}, "voiceSettings.language", "BCP-47"),
        ({"voiceSettings": {"language": "en_US"}}, "voiceSettings.language", "BCP-47"),
        ({"voiceSettings": {"ttsVoice": "robot-9"}}, "voiceSettings.ttsVoice", "known voice"),
        ({"voiceSettings": {"ttsVoice": "aura-2-nestor-es"}}, "voiceSettings", "does not speak"),
        ({"voiceSettings": {"maxCallDuration": 0}}, "voiceSettings.maxCallDuration", "greater than"),
        ({"voiceSettings": {"maxCallDuration": 86400}}, "voiceSettings.maxCallDuration", "7200"),
        ({"voiceSettings": {"handoffTriggers": [{"type": "sentiment", "value": 3, "action": "end_call"}]}},
         "voiceSettings.handoffTriggers[0]", "between -1 and 1"),
        ({"timezone": "Mars/Olympus"}, "timezone", "IANA"),
        ({"timezone": "localtime"}, "timezone", "IANA"),
        ({"goals": [{"type": "leads", "target": 0}]}, "goals[0].target", "greater than 0"),
        ({"goals": [{"type": "followers", "target": 5}]}, "goals[0].type", "leads"),
        ({"budget": {"total": 100, "daily": 200}}, "budget", "daily must not exceed total"),
        ({"budget": {"currency": "USD"}}, "budget", "total, a daily cap"),
        ({"schedule": {"startAt": "2030-01-02T00:00:00", "endAt": "2030-01-01T00:00:00"}}, "schedule", "endAt"),
        ({"schedule": {"startAt": "2030-01-02T09:00:00+02:00"}}, "schedule.startAt", "without an offset"),
        ({"schedule": {"windows": {"monday": ["9-17"]}}}, "schedule.windows", "range like"),
        ({"schedule": {"windows": {"monday": ["09:00-12:00", "11:00-13:00"]}}}, "schedule.windows", "overlap"),
        ({"schedule": {"windows": {"funday": ["09:00-12:00"]}}}, "schedule.windows.funday", ""),
        ({"targetAudience": {"geographic": {"countries": ["ZZ"]}}}, "targetAudience.geographic.countries[0]", "ISO"),
        ({"targetAudience": {"demographics": {"ageRange": {"min": 60, "max": 20}}}},
         "targetAudience.demographics.ageRange", "min"),
        ({"targetAudience": {"exclusionRules": [{"field": "age", "operator": "gt", "value": "x"}]}},
         "targetAudience.exclusionRules[0]", "number"),
        ({"knowledgeBaseIds": ["a", "a"]}, "knowledgeBaseIds", "repeat"),
        ({"voiceSetings": {}}, "voiceSetings", "unknown field"),
    ],
)
async def test_invalid_configuration_names_the_field(api: httpx.AsyncClient, patch, field, words):
    r = await api.post("/api/campaigns", json={**CAMPAIGN, **patch})
    assert r.status_code == 400, r.text
    errors = fields(r)
    assert field in errors, errors
    assert words.lower() in errors[field].lower(), errors
    assert r.json()["code"] == "validation_error"


async def test_missing_required_fields_are_all_listed(api: httpx.AsyncClient):
    r = await api.post("/api/campaigns", json={"description": "x"})
    assert r.status_code == 400
    assert {"name", "type", "channel"} <= set(fields(r))
    r = await api.post("/api/campaigns", json={**CAMPAIGN, "type": "sideways", "name": ""})
    assert {"type", "name"} <= set(fields(r))


async def test_malformed_json_is_a_400(api: httpx.AsyncClient):
    r = await api.post("/api/campaigns", content=b"{not json", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["code"] == "validation_error"


async def test_organization_id_in_the_body_must_be_the_keys(api: httpx.AsyncClient, other_api: httpx.AsyncClient):
    mine = (await api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]["organizationId"]
    r = await api.post("/api/campaigns", json={**CAMPAIGN, "organizationId": mine})
    assert r.status_code == 201
    theirs = (await other_api.post("/api/campaigns", json=CAMPAIGN)).json()["campaign"]["organizationId"]
    r = await api.post("/api/campaigns", json={**CAMPAIGN, "organizationId": theirs})
    assert r.status_code == 403 and r.json()["code"] == "organization_mismatch"
    r = await api.get("/api/campaigns", params={"organizationId": theirs})
    assert r.status_code == 403
    assert (await api.get("/api/campaigns", params={"organizationId": mine})).status_code == 200


# --- Idempotent create -------------------------------------------------------------------


async def test_retried_create_returns_the_same_campaign(api: httpx.AsyncClient):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    first = await api.post("/api/campaigns", json=CAMPAIGN, headers=key)
    again = await api.post("/api/campaigns", json=CAMPAIGN, headers=key)
    assert first.status_code == again.status_code == 201
    assert first.json()["campaign"]["id"] == again.json()["campaign"]["id"]
    assert again.headers["idempotent-replayed"] == "true"
    listed = (await api.get("/api/campaigns")).json()
    assert listed["total"] == 1


async def test_concurrent_retries_create_one_campaign(api: httpx.AsyncClient):
    key = {"Idempotency-Key": "retry-storm"}
    answers = await asyncio.gather(*(api.post("/api/campaigns", json=CAMPAIGN, headers=key) for _ in range(8)))
    assert {r.status_code for r in answers} == {201}
    assert len({r.json()["campaign"]["id"] for r in answers}) == 1
    assert (await api.get("/api/campaigns")).json()["total"] == 1


async def test_idempotency_key_reused_with_another_body_is_refused(api: httpx.AsyncClient):
    key = {"Idempotency-Key": "k1"}
    assert (await api.post("/api/campaigns", json=CAMPAIGN, headers=key)).status_code == 201
    r = await api.post("/api/campaigns", json={**CAMPAIGN, "name": "Other"}, headers=key)
    assert r.status_code == 409 and r.json()["code"] == "idempotency_key_reused"


async def test_idempotency_keys_are_per_organization(api: httpx.AsyncClient, other_api: httpx.AsyncClient):
    key = {"Idempotency-Key": "shared-key"}
    a = (await api.post("/api/campaigns", json=CAMPAIGN, headers=key)).json()["campaign"]
    b = (await other_api.post("/api/campaigns", json=CAMPAIGN, headers=key)).json()["campaign"]
    assert a["id"] != b["id"] and a["organizationId"] != b["organizationId"]


# --- List ----------------------------------------------------------------------------------


async def test_list_filters_sorts_and_paginates(api: httpx.AsyncClient):
    for i, (type_, channel) in enumerate([("inbound", "web"), ("outbound", "phone"), ("hybrid", "sms"),
                                          ("outbound", "multi"), ("outbound", "phone")]):
        r = await api.post("/api/campaigns", json={**CAMPAIGN, "name": f"C{i}", "type": type_, "channel": channel})
        assert r.status_code == 201
    everything = (await api.get("/api/campaigns")).json()
    assert everything["total"] == 5 and [c["name"] for c in everything["campaigns"]][0] == "C4"

    outbound = (await api.get("/api/campaigns", params={"type": "outbound"})).json()
    assert outbound["total"] == 3
    both = (await api.get("/api/campaigns", params=[("channel", "web,sms")])).json()
    assert sorted(c["name"] for c in both["campaigns"]) == ["C0", "C2"]

    page1 = (await api.get("/api/campaigns", params={"sort": "name", "limit": 2, "page": 1})).json()
    page3 = (await api.get("/api/campaigns", params={"sort": "name", "limit": 2, "page": 3})).json()
    assert [c["name"] for c in page1["campaigns"]] == ["C0", "C1"]
    assert [c["name"] for c in page3["campaigns"]] == ["C4"] and page3["total"] == 5
    assert "performance" in page1["campaigns"][0]

    assert (await api.get("/api/campaigns", params={"status": "draft"})).json()["total"] == 5
    assert (await api.get("/api/campaigns", params={"status": "active"})).json()["total"] == 0
    assert (await api.get("/api/campaigns", params={"q": "c3"})).json()["total"] == 1


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"status": "running"}, "query.status"),
        ({"type": "x"}, "query.type"),
        ({"sort": "password"}, "query.sort"),
        ({"limit": 0}, "query.limit"),
        ({"limit": 1000}, "query.limit"),
        ({"page": 0}, "query.page"),
        ({"page": "one"}, "query.page"),
    ],
)
async def test_list_rejects_bad_parameters(api: httpx.AsyncClient, params, field):
    r = await api.get("/api/campaigns", params=params)
    assert r.status_code == 400, r.text
    assert field in fields(r)


async def test_archived_campaigns_are_listed_only_when_asked(api: httpx.AsyncClient, campaign: dict):
    assert (await api.delete(f"/api/campaigns/{campaign['id']}")).status_code == 200
    assert (await api.get("/api/campaigns")).json()["total"] == 0
    archived = (await api.get("/api/campaigns", params={"status": "archived"})).json()
    assert [c["id"] for c in archived["campaigns"]] == [campaign["id"]]


# --- Get, update, configuration ----------------------------------------------------------


async def test_get_missing_and_malformed_ids(api: httpx.AsyncClient):
    r = await api.get(f"/api/campaigns/{uuid.uuid4()}")
    assert r.status_code == 404 and r.json()["code"] == "campaign_not_found"
    r = await api.get("/api/campaigns/not-a-uuid")
    assert r.status_code == 400 and "path.id" in fields(r)


async def test_update_is_a_merge_patch(api: httpx.AsyncClient, campaign: dict):
    url = f"/api/campaigns/{campaign['id']}"
    r = await api.put(url, json={"name": "Renamed", "voiceSettings": {"speakingRate": 1.1},
                                 "budget": {"total": 100}})
    assert r.status_code == 200, r.text
    c = r.json()["campaign"]
    assert c["name"] == "Renamed"
    assert c["voiceSettings"]["speakingRate"] == 1.1
    assert c["voiceSettings"]["speakingStyle"] == "professional"  # untouched
    assert c["budget"]["total"] == 100
    assert c["version"] == campaign["version"] + 1
    r = await api.put(url, json={"budget": None, "description": "now with text"})
    c = r.json()["campaign"]
    assert c["budget"] is None and c["description"] == "now with text"


async def test_update_lists_every_error_and_changes_nothing(api: httpx.AsyncClient, campaign: dict):
    url = f"/api/campaigns/{campaign['id']}"
    r = await api.put(url, json={"name": "ok", "voiceSettings": {"speakingRate": 9, "language": "??"},
                                 "timezone": "Nowhere"})
    assert r.status_code == 400
    assert {"voiceSettings.speakingRate", "voiceSettings.language", "timezone"} <= set(fields(r))
    c = (await api.get(url)).json()["campaign"]
    assert c["name"] == campaign["name"] and c["version"] == campaign["version"]


async def test_update_rejects_unknown_fields_and_removing_required_ones(api: httpx.AsyncClient, campaign: dict):
    url = f"/api/campaigns/{campaign['id']}"
    r = await api.put(url, json={"nmae": "typo"})
    assert r.status_code == 400 and fields(r) == {"nmae": "unknown field"}
    r = await api.put(url, json={"name": None})
    assert r.status_code == 400 and "name" in fields(r)


async def test_if_match_guards_against_lost_updates(api: httpx.AsyncClient, campaign: dict):
    url = f"/api/campaigns/{campaign['id']}"
    etag = (await api.get(url)).headers["etag"]
    assert (await api.put(url, json={"name": "A"}, headers={"If-Match": etag})).status_code == 200
    r = await api.put(url, json={"name": "B"}, headers={"If-Match": etag})
    assert r.status_code == 412 and r.json()["code"] == "precondition_failed"
    assert (await api.get(url)).json()["campaign"]["name"] == "A"


async def test_put_configuration(api: httpx.AsyncClient, campaign: dict):
    url = f"/api/campaigns/{campaign['id']}/configuration"
    r = await api.put(url, json={"knowledgeBaseIds": ["kb-9"], "voiceSettings": {"ttsVoice": "aura-1"},
                                 "goals": [{"type": "calls", "target": 100, "timeframe": "daily"}]})
    assert r.status_code == 200, r.text
    c = r.json()["campaign"]
    assert c["knowledgeBaseIds"] == ["kb-9"] and c["voiceSettings"]["ttsVoice"] == "aura-1"
    goal_id = c["goals"][0]["id"]
    # Re-sending the goal by id keeps it (and its progress); current/achieved are not the client's.
    r = await api.put(url, json={"goals": [{"id": goal_id, "type": "calls", "target": 200, "timeframe": "daily",
                                            "current": 999, "achieved": True}]})
    g = r.json()["campaign"]["goals"][0]
    assert g["id"] == goal_id and g["target"] == 200 and g["current"] == 0 and g["achieved"] is False
    # Name and status are not configuration.
    r = await api.put(url, json={"name": "x"})
    assert r.status_code == 400 and fields(r) == {"name": "unknown field"}


async def test_put_configuration_lists_every_error(api: httpx.AsyncClient, campaign: dict):
    r = await api.put(
        f"/api/campaigns/{campaign['id']}/configuration",
        json={"voiceSettings": {"speakingRate": 3, "qualificationThreshold": 500, "maxCallDuration": -5},
              "goals": [{"type": "leads", "target": -1}], "budget": {"daily": -3}},
    )
    assert r.status_code == 400
    assert {"voiceSettings.speakingRate", "voiceSettings.qualificationThreshold", "voiceSettings.maxCallDuration",
            "goals[0].target", "budget.daily"} <= set(fields(r))


# --- Clone and audit -----------------------------------------------------------------------


async def test_clone_copies_the_configuration_into_a_new_draft(api: httpx.AsyncClient, campaign: dict):
    url = f"/api/campaigns/{campaign['id']}"
    await api.put(url + "/configuration", json={"voiceSettings": {"speakingRate": 0.9}, "knowledgeBaseIds": ["k"],
                                                "goals": [{"type": "leads", "target": 5}]})
    await api.post(url + "/activate")
    r = await api.post(url + "/clone", json={"name": "Copy"})
    assert r.status_code == 201, r.text
    copy = r.json()["campaign"]
    assert copy["id"] != campaign["id"] and copy["status"] == "draft" and copy["name"] == "Copy"
    assert copy["voiceSettings"]["speakingRate"] == 0.9 and copy["knowledgeBaseIds"] == ["k"]
    assert copy["goals"][0]["target"] == 5 and copy["goals"][0]["current"] == 0
    audit = (await api.get(f"/api/campaigns/{copy['id']}/audit")).json()["audit"]
    assert [e["action"] for e in audit] == ["created", "cloned"]
    assert audit[1]["changes"]["sourceCampaignId"] == campaign["id"]
    default_name = (await api.post(url + "/clone")).json()["campaign"]["name"]
    assert default_name == f"{campaign['name']} (copy)"


async def test_audit_records_who_changed_what_oldest_first(api: httpx.AsyncClient, campaign: dict):
    url = f"/api/campaigns/{campaign['id']}"
    await api.put(url, json={"name": "Renamed"})
    await api.put(url + "/configuration", json={"voiceSettings": {"speakingRate": 1.2}})
    await api.put(url, json={"status": "active", "statusReason": "launch day"})
    await api.post(url + "/pause")
    audit = (await api.get(url + "/audit")).json()
    assert [e["action"] for e in audit["audit"]] == ["created", "updated", "configuration_changed",
                                                     "status_changed", "status_changed"]
    assert audit["total"] == 5
    renamed, config, activated, paused = audit["audit"][1:]
    assert renamed["changes"] == {"name": {"from": "Spring promo", "to": "Renamed"}}
    assert config["changes"] == {"voiceSettings.speakingRate": {"from": 1.0, "to": 1.2}}
    assert activated["changes"] == {"status": {"from": "draft", "to": "active"}}
    assert activated["reason"] == "launch day"
    assert paused["changes"] == {"status": {"from": "active", "to": "paused"}}
    assert all(e["actor"]["kind"] == "api_key" and e["actor"]["id"] for e in audit["audit"])
    page = (await api.get(url + "/audit", params={"limit": 2, "page": 2})).json()
    assert [e["id"] for e in page["audit"]] == [e["id"] for e in audit["audit"][2:4]]


# --- Authentication and isolation ----------------------------------------------------------


async def test_requests_need_a_valid_key(anonymous: httpx.AsyncClient):
    r = await anonymous.get("/api/campaigns")
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"
    assert r.headers["www-authenticate"] == "Bearer"
    r = await anonymous.get("/api/campaigns", headers={"Authorization": "Bearer qck_nope"})
    assert r.status_code == 401
    r = await anonymous.get("/api/campaigns", headers={"Authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401


async def test_revoked_keys_stop_working_at_once(api: httpx.AsyncClient, make_api):
    created = (await api.post("/api/keys", json={"name": "ci", "scopes": ["campaigns:read"]})).json()["key"]
    assert created["key"].startswith("qck_")
    second = await make_api(key=created["key"])
    assert (await second.get("/api/campaigns")).status_code == 200
    listed = (await api.get("/api/keys")).json()["keys"]
    assert all("key" not in k or k["key"] is None for k in listed) and len(listed) == 2
    assert (await api.delete(f"/api/keys/{created['id']}")).status_code == 200
    assert (await second.get("/api/campaigns")).status_code == 401


CROSS_ORG_CALLS = [
    ("GET", "", None),
    ("PUT", "", {"name": "stolen"}),
    ("DELETE", "", None),
    ("PUT", "/configuration", {"voiceSettings": {"speakingRate": 1.1}}),
    ("POST", "/clone", {}),
    ("GET", "/audit", None),
    ("POST", "/activate", None),
    ("POST", "/pause", None),
    ("POST", "/resume", None),
    ("POST", "/end", None),
]


@pytest.mark.parametrize(("method", "suffix", "body"), CROSS_ORG_CALLS)
async def test_another_organizations_campaign_is_not_found(
    api: httpx.AsyncClient, other_api: httpx.AsyncClient, campaign: dict, method, suffix, body
):
    url = f"/api/campaigns/{campaign['id']}{suffix}"
    r = await other_api.request(method, url, json=body)
    assert r.status_code == 404, r.text
    assert campaign["name"] not in r.text and campaign["id"] not in r.text
    # …and nothing changed for its owner.
    mine = (await api.get(f"/api/campaigns/{campaign['id']}")).json()["campaign"]
    assert mine["status"] == "draft" and mine["name"] == campaign["name"] and mine["version"] == campaign["version"]
    assert (await other_api.get("/api/campaigns")).json()["total"] == 0


async def test_another_organizations_keys_cannot_be_revoked(api: httpx.AsyncClient, other_api: httpx.AsyncClient):
    theirs = (await other_api.get("/api/keys")).json()["keys"][0]
    assert (await api.delete(f"/api/keys/{theirs['id']}")).status_code == 404
    assert (await other_api.get("/api/campaigns")).status_code == 200


# --- Operations ------------------------------------------------------------------------------


async def test_health_readiness_and_metrics(anonymous: httpx.AsyncClient, api: httpx.AsyncClient, campaign: dict):
    assert (await anonymous.get("/healthz")).json() == {"status": "ok"}
    ready = await anonymous.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["checks"] == {"postgres": "ok", "redis": "ok", "temporal": "ok"}
    text = (await anonymous.get("/metrics")).text
    assert 'http_requests_total{method="POST",route="/api/campaigns",status="201"}' in text
    assert "http_request_duration_seconds_bucket" in text
    assert 'campaigns{status="draft"}' in text


async def test_openapi_documents_the_endpoints(anonymous: httpx.AsyncClient):
    spec = (await anonymous.get("/openapi.json")).json()
    for path in ("/api/campaigns", "/api/campaigns/{id}", "/api/campaigns/{id}/configuration",
                 "/api/campaigns/{id}/clone", "/api/campaigns/{id}/audit"):
        assert path in spec["paths"], path
    assert spec["paths"]["/api/campaigns"]["post"]["summary"]
    assert (await anonymous.get("/docs")).status_code == 200


async def test_voice_catalogue(api: httpx.AsyncClient):
    voices = (await api.get("/api/voices")).json()["voices"]
    assert {"aura-1", "aura-2"} <= {v["id"] for v in voices}


async def test_rate_limit_per_key(app, make_api):
    app.state.settings = app.state.settings.model_copy(update={"rate_limit_per_second": 3})
    try:
        client = await make_api()
        answers = await asyncio.gather(*(client.get("/api/campaigns") for _ in range(8)))
        limited = [r for r in answers if r.status_code == 429]
        assert limited and len(limited) <= 5, [r.status_code for r in answers]
        assert limited[0].headers["retry-after"] == "1" and limited[0].json()["code"] == "rate_limited"
        other = await make_api()
        assert (await other.get("/api/campaigns")).status_code == 200  # another key is not affected
    finally:
        app.state.settings = app.state.settings.model_copy(update={"rate_limit_per_second": 200})

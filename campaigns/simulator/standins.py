"""Stand-ins for the two external services the platform talks to: the voice-AI pipeline
and the knowledge-base service, served by `campaigns simulate` (and by the tests).

They implement the contracts in `campaigns/clients/` and behave like careful real
services: a repeated `Idempotency-Key` replays the first answer and changes nothing, and
every request is logged so one can see what the platform sent. `/_control/…` lets a test
or a curious newcomer make the pipeline fail for a while.

Knowledge bases are kept in a JSON file under the data directory (when given), so they
survive a restart; a new store starts with a few demo knowledge bases.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, Header, Query, Request, Response
from fastapi.responses import JSONResponse

DEMO_KNOWLEDGE_BASES = {
    "kb-product-catalog": "Product catalogue",
    "kb-faq": "Frequently asked questions",
    "kb-pricing": "Pricing and plans",
}


def _now() -> str:
    return datetime.now(UTC).isoformat()


@dataclass
class Operation:
    at: str
    method: str
    path: str
    campaign_id: str | None
    operation: str
    idempotency_key: str | None
    status: int
    replay: bool = False


@dataclass
class StandInState:
    store: Path | None = None
    knowledge_bases: dict[str, dict[str, Any]] = field(default_factory=dict)
    campaigns: dict[str, dict[str, Any]] = field(default_factory=dict)  # provisioned on the pipeline
    operations: list[Operation] = field(default_factory=list)
    answered: dict[str, tuple[int, Any]] = field(default_factory=dict)  # idempotency key → first answer
    fail_next: int = 0
    fail_status: int = 503
    refuse_flows: set[str] = field(default_factory=set)  # provisioning a campaign with one of these: 422
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        if self.store is not None and self.store.exists():
            self.knowledge_bases = json.loads(self.store.read_text())
        elif not self.knowledge_bases:
            self.knowledge_bases = {
                kb_id: {"id": kb_id, "name": name, "createdAt": _now()} for kb_id, name in DEMO_KNOWLEDGE_BASES.items()
            }
            self._save()

    def _save(self) -> None:
        if self.store is not None:
            self.store.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.store.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.knowledge_bases, indent=2))
            tmp.replace(self.store)

    def effective(self, campaign_id: str | None = None) -> list[Operation]:
        """Operations that changed something (not failures, not replays)."""
        return [
            op
            for op in self.operations
            if 200 <= op.status < 300 and not op.replay and (campaign_id is None or op.campaign_id == campaign_id)
        ]

    def provisioned_ids(self) -> list[str]:
        return list(self.campaigns)


def create_app(state: StandInState | None = None) -> FastAPI:
    state = state or StandInState()
    app = FastAPI(title="Voice-AI pipeline and knowledge-base stand-ins", version="1")
    app.state.standins = state

    def log(
        request: Request, campaign_id: str | None, operation: str, key: str | None, status: int, replay: bool = False
    ) -> None:
        state.operations.append(
            Operation(_now(), request.method, request.url.path, campaign_id, operation, key, status, replay)
        )

    def injected_failure(request: Request, campaign_id: str | None, operation: str, key: str | None) -> Response | None:
        if state.fail_next > 0:
            state.fail_next -= 1
            log(request, campaign_id, operation, key, state.fail_status)
            return JSONResponse({"error": "pipeline unavailable (simulated)"}, status_code=state.fail_status)
        return None

    def idempotent(request: Request, campaign_id: str, operation: str, key: str | None, apply) -> Response:
        if not key:
            log(request, campaign_id, operation, None, 400)
            return JSONResponse({"error": "Idempotency-Key header required"}, status_code=400)
        failure = injected_failure(request, campaign_id, operation, key)
        if failure is not None:
            return failure
        with state._lock:
            if key in state.answered:
                status, body = state.answered[key]
                log(request, campaign_id, operation, key, status, replay=True)
                return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"})
            status, body = apply()
            state.answered[key] = (status, body)
        log(request, campaign_id, operation, key, status)
        return JSONResponse(body, status_code=status)

    # --- The pipeline ----------------------------------------------------------------

    @app.put("/v1/campaigns/{campaign_id}")
    async def provision(
        campaign_id: str, request: Request, idempotency_key: Annotated[str | None, Header()] = None
    ) -> Response:
        body = await request.json()

        def apply() -> tuple[int, Any]:
            if body.get("flowId") in state.refuse_flows:
                return 422, {"error": f"unknown flow {body.get('flowId')!r}"}
            created = campaign_id not in state.campaigns
            state.campaigns[campaign_id] = {**body, "provisionedAt": _now(), "reinitializations": 0}
            return (201 if created else 200), {"campaignId": campaign_id, "status": "provisioned"}

        return idempotent(request, campaign_id, "provision", idempotency_key, apply)

    @app.post("/v1/campaigns/{campaign_id}/reinitialize")
    async def reinitialize(
        campaign_id: str, request: Request, idempotency_key: Annotated[str | None, Header()] = None
    ) -> Response:
        body = await request.json()

        def apply() -> tuple[int, Any]:
            previous = state.campaigns.get(campaign_id, {})
            state.campaigns[campaign_id] = {
                **body,
                "provisionedAt": previous.get("provisionedAt", _now()),
                "reinitializations": previous.get("reinitializations", 0) + 1,
            }
            return 200, {"campaignId": campaign_id, "status": "reinitialized"}

        return idempotent(request, campaign_id, "reinitialize", idempotency_key, apply)

    @app.delete("/v1/campaigns/{campaign_id}")
    async def deprovision(
        campaign_id: str, request: Request, reason: str = "", idempotency_key: Annotated[str | None, Header()] = None
    ) -> Response:
        def apply() -> tuple[int, Any]:
            if state.campaigns.pop(campaign_id, None) is None:
                return 404, {"error": "not provisioned"}
            return 200, {"campaignId": campaign_id, "status": "deprovisioned", "reason": reason}

        return idempotent(request, campaign_id, "deprovision", idempotency_key, apply)

    @app.get("/v1/campaigns")
    async def provisioned() -> dict:
        return {"campaigns": [{"campaignId": k, **v} for k, v in state.campaigns.items()]}

    # --- Knowledge bases -------------------------------------------------------------

    @app.get("/v1/knowledge-bases")
    async def list_knowledge_bases() -> dict:
        return {"knowledgeBases": list(state.knowledge_bases.values())}

    @app.get("/v1/knowledge-bases/{kb_id}")
    async def get_knowledge_base(kb_id: str) -> Response:
        kb = state.knowledge_bases.get(kb_id)
        if kb is None:
            return JSONResponse({"error": "knowledge base not found"}, status_code=404)
        return JSONResponse(kb)

    @app.put("/v1/knowledge-bases/{kb_id}")
    async def put_knowledge_base(kb_id: str, request: Request) -> Response:
        body = await request.json() if await request.body() else {}
        created = kb_id not in state.knowledge_bases
        state.knowledge_bases[kb_id] = {"id": kb_id, "name": str(body.get("name") or kb_id), "createdAt": _now()}
        state._save()
        return JSONResponse(state.knowledge_bases[kb_id], status_code=201 if created else 200)

    @app.delete("/v1/knowledge-bases/{kb_id}")
    async def delete_knowledge_base(kb_id: str) -> Response:
        if state.knowledge_bases.pop(kb_id, None) is None:
            return JSONResponse({"error": "knowledge base not found"}, status_code=404)
        state._save()
        return Response(status_code=204)

    # --- Control ---------------------------------------------------------------------

    @app.post("/_control/fail")
    async def fail(
        count: Annotated[int, Query(ge=0, le=10_000)] = 5, status: Annotated[int, Query(ge=400, le=599)] = 503
    ) -> dict:
        """Make the next `count` pipeline requests fail with `status`."""
        state.fail_next, state.fail_status = count, status
        return {"failNext": count, "status": status}

    @app.get("/_control/operations")
    async def operations(limit: Annotated[int, Query(ge=1, le=10_000)] = 100) -> dict:
        return {"operations": [op.__dict__ for op in state.operations[-limit:]]}

    @app.get("/healthz")
    async def healthz() -> dict:
        return {"status": "ok"}

    return app

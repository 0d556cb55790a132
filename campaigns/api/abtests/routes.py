"""A/B testing endpoints: tests of a campaign (`/api/campaigns/{id}/ab-test…`) and the
sample-size calculator (`/api/ab-tests/sample-size`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal
from uuid import UUID

from fastapi import APIRouter, Body, Path, Query, Request, Response

from campaigns.abtests import service
from campaigns.abtests.models import SampleSizeRequest
from campaigns.api.abtests.schemas import (
    ABTestEnvelope,
    ABTestList,
    AssignmentEnvelope,
    AssignRequest,
    EvaluationList,
    ResultsEnvelope,
    SampleSizeEnvelope,
    StopBody,
)
from campaigns.api.bodies import JsonRoute
from campaigns.api.deps import AppSettings, Cache, Db, PipelineCaller, Reader, Temporal, Writer
from campaigns.domain.abtest.config import ABTestCreate
from campaigns.errors import invalid

router = APIRouter(tags=["a/b tests"], route_class=JsonRoute)

CampaignId = Annotated[UUID, Path(alias="id", description="The campaign's id")]
TestId = Annotated[UUID, Path(alias="testId", description="The test's id")]
Page = Annotated[int, Query(ge=1, le=100_000)]
Limit = Annotated[int, Query(ge=1, le=100)]

_TEST = "/api/campaigns/{id}/ab-test/{testId}"


def _inlined(schema: Any, defs: dict[str, Any] | None = None) -> Any:
    """The request's JSON schema with its `$defs` references inlined, for the OpenAPI document
    (the body is parsed by the service, which lists every error, not by FastAPI)."""
    if defs is None:
        defs = schema.pop("$defs", {})
    if isinstance(schema, dict):
        if "$ref" in schema:
            return _inlined(dict(defs[schema["$ref"].rsplit("/", 1)[-1]]), defs)
        return {k: _inlined(v, defs) for k, v in schema.items()}
    if isinstance(schema, list):
        return [_inlined(v, defs) for v in schema]
    return schema


_CREATE_BODY = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inlined(ABTestCreate.model_json_schema(by_alias=True))}},
    }
}


@router.post(
    "/api/campaigns/{id}/ab-test",
    status_code=201,
    response_model=ABTestEnvelope,
    openapi_extra=_CREATE_BODY,
)
async def create_test(
    campaign_id: CampaignId,
    request: Request,
    response: Response,
    caller: Writer,
    db: Db,
    cache: Cache,
    temporal: Temporal,
    settings: AppSettings,
) -> dict:
    """Create an A/B or multivariate test of the campaign; invalid configurations list every error."""
    try:
        body = await request.json()
    except ValueError:
        raise invalid([{"field": "(body)", "reason": "not valid JSON"}]) from None
    test = await service.create(
        pool=db, cache=cache, temporal=temporal, settings=settings, principal=caller, campaign_id=campaign_id, body=body
    )
    response.headers["Location"] = f"/api/campaigns/{campaign_id}/ab-test/{test.id}"
    return {"test": test}


@router.get("/api/campaigns/{id}/ab-tests", response_model=ABTestList)
async def list_tests(
    campaign_id: CampaignId,
    caller: Reader,
    db: Db,
    cache: Cache,
    status: Annotated[Literal["running", "concluded"] | None, Query()] = None,
    page: Page = 1,
    limit: Limit = 20,
) -> dict:
    """The campaign's tests, newest first."""
    tests, total = await service.list_(
        pool=db, cache=cache, principal=caller, campaign_id=campaign_id, status=status, page=page, limit=limit
    )
    return {"tests": tests, "total": total, "page": page, "limit": limit}


@router.get(_TEST, response_model=ABTestEnvelope)
async def get_test(campaign_id: CampaignId, test_id: TestId, caller: Reader, db: Db, cache: Cache) -> dict:
    """Get a test: its design, status, conclusion and promotion."""
    return {"test": await service.get(pool=db, cache=cache, principal=caller, campaign_id=campaign_id, test_id=test_id)}


@router.get(_TEST + "/results", response_model=ResultsEnvelope)
async def test_results(campaign_id: CampaignId, test_id: TestId, caller: Reader, db: Db, cache: Cache) -> dict:
    """The test's results now: each variant against control, the checks, the verdict."""
    return {
        "results": await service.results(
            pool=db, cache=cache, principal=caller, campaign_id=campaign_id, test_id=test_id
        )
    }


@router.post(
    _TEST + "/assign",
    response_model=AssignmentEnvelope,
    responses={409: {"description": "The campaign or the test no longer assigns (`campaign_ended`…)."}},
)
async def assign(
    campaign_id: CampaignId, test_id: TestId, body: AssignRequest, caller: PipelineCaller, db: Db, cache: Cache
) -> dict:
    """The subject's variant (the same every time; the split follows the weights)."""
    return {
        "assignment": await service.assign(
            pool=db, cache=cache, principal=caller, campaign_id=campaign_id, test_id=test_id, subject_id=body.subject_id
        )
    }


@router.post(_TEST + "/stop", response_model=ABTestEnvelope)
async def stop_test(
    campaign_id: CampaignId,
    test_id: TestId,
    caller: Writer,
    db: Db,
    cache: Cache,
    temporal: Temporal,
    settings: AppSettings,
    body: Annotated[StopBody | None, Body()] = None,
) -> dict:
    """Stop a running test now (concluded `stopped`, nothing promoted)."""
    test = await service.stop(
        pool=db,
        cache=cache,
        temporal=temporal,
        settings=settings,
        principal=caller,
        campaign_id=campaign_id,
        test_id=test_id,
        reason=body.reason if body else None,
    )
    return {"test": test}


@router.get(_TEST + "/evaluations", response_model=EvaluationList)
async def test_evaluations(
    campaign_id: CampaignId, test_id: TestId, caller: Reader, db: Db, cache: Cache, page: Page = 1, limit: Limit = 50
) -> dict:
    """Every evaluation the test's workflow made, newest first."""
    items, total = await service.evaluations(
        pool=db, cache=cache, principal=caller, campaign_id=campaign_id, test_id=test_id, page=page, limit=limit
    )
    return {"evaluations": items, "total": total, "page": page, "limit": limit}


@router.post("/api/ab-tests/sample-size", response_model=SampleSizeEnvelope)
async def sample_size(body: SampleSizeRequest, caller: Reader) -> dict:
    """Calls per variant and days a test needs (fixed horizon and sequential)."""
    return {"sampleSize": service.sample_size(body)}

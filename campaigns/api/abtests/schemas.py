"""HTTP shapes of the abtests endpoints that only the routes use: envelopes, lists and
request bodies (camelCase JSON). The models the use cases take and return are in
`campaigns.abtests.models`."""

from __future__ import annotations

from pydantic import Field

from campaigns.abtests.models import ABTest, Assignment, Evaluation, Results, SampleSize
from campaigns.domain.base import ApiModel, ResponseModel


class ABTestEnvelope(ResponseModel):
    test: ABTest


class ABTestList(ResponseModel):
    tests: list[ABTest]
    total: int
    page: int
    limit: int


class ResultsEnvelope(ResponseModel):
    results: Results


class EvaluationList(ResponseModel):
    evaluations: list[Evaluation]
    total: int
    page: int
    limit: int


class AssignRequest(ApiModel):
    subject_id: str = Field(min_length=1, max_length=256, description="Whoever is tested: a caller, a number…")


class AssignmentEnvelope(ResponseModel):
    assignment: Assignment


class StopBody(ApiModel):
    reason: str | None = Field(default=None, max_length=500)


class SampleSizeEnvelope(ResponseModel):
    sample_size: SampleSize

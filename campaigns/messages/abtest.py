"""The A/B test workflow's id, names and messages: what it, its parent (the campaign's
workflow), its activities and the API say to each other. Pure pydantic models, free of
scipy, so the workflow sandbox can import them."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

from campaigns.messages.common import Actor

Status = Literal["running", "concluded"]
Conclusion = Literal["winner", "no_difference", "harm", "max_duration", "invalid", "stopped"]

AB_TEST_ACTOR = Actor(kind="system", name="ab-test-workflow")


WORKFLOW = "ABTestWorkflow"
STOP = "stop"
CURRENT = "current"
# Its activities (recording a platform event is the campaign's RECORD_EVENT).
EVALUATE = "evaluate"
CONCLUDE = "conclude"
PROMOTE = "promote"


def workflow_id(test_id: str) -> str:
    return f"abtest-{test_id}"


class ABTestStart(BaseModel):
    """Everything the test's workflow needs to run; the rest it reads through activities."""

    test_id: str
    campaign_id: str
    organization_id: str
    name: str
    mode: str
    started_at: datetime
    ends_at: datetime
    evaluation_interval_seconds: int
    auto_promote_winner: bool = False


class ABTestState(BaseModel):
    """The whole state of a test's workflow; continue-as-new hands it on unchanged."""

    start: ABTestStart
    status: Status = "running"
    evaluations: int = 0
    last_evaluated_at: datetime | None = None
    running: dict[str, Any] = Field(default_factory=dict)  # sequential state (see analysis.look)
    last_reason: str | None = None
    conclusion: Conclusion | None = None
    winner_variant_id: str | None = None
    concluded_at: datetime | None = None
    promoted: bool = False
    runs: int = 1


class EvaluateRequest(BaseModel):
    test_id: str
    seq: int
    at: datetime
    running: dict[str, Any] = Field(default_factory=dict)


class Evaluation(BaseModel):
    """One evaluation, as recorded. `found` is false when the test's row does not exist (its
    creation was rolled back after the workflow had started)."""

    found: bool = True
    conclusion: Conclusion | None = None
    winner_variant_id: str | None = None
    reason: str = ""
    running: dict[str, Any] = Field(default_factory=dict)
    weights: dict[str, float] | None = None  # bandit: the new weights, if they changed


class Conclude(BaseModel):
    test_id: str
    conclusion: Conclusion
    reason: str
    winner_variant_id: str | None
    actor: Actor
    at: datetime


class Concluded(BaseModel):
    """The conclusion as stored (a retried or late request returns the first one)."""

    conclusion: Conclusion
    reason: str
    winner_variant_id: str | None
    concluded_at: datetime


class Promote(BaseModel):
    test_id: str
    variant_id: str


class Promotion(BaseModel):
    """Stored and published in camelCase, like the rest of the API's JSON."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True)

    promoted: bool
    pending: bool = False  # concluded with a winner to promote; the promotion follows
    variant_id: str
    changes: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


class StopRequest(BaseModel):
    actor: Actor = Field(default_factory=Actor)
    reason: str | None = None

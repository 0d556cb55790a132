"""What the voice-AI pipeline is told, as a pure function of status, configuration and
what it last confirmed."""

from __future__ import annotations

import pytest

from campaigns.domain import pipeline
from campaigns.domain.config import CampaignStatus as S
from campaigns.domain.pipeline import PipelineApplied, PipelineRequest
from campaigns.domain.pipeline import PipelineOperation as Op

NONE = None
UP_A = PipelineApplied(provisioned=True, fingerprint="a", operations=1)
DOWN = PipelineApplied(provisioned=False, operations=2)


@pytest.mark.parametrize(
    ("status", "digest", "applied", "expected"),
    [
        (S.DRAFT, "a", NONE, None),
        (S.SCHEDULED, "a", NONE, None),
        (S.ACTIVE, "a", NONE, Op.PROVISION),
        (S.ACTIVE, "a", DOWN, Op.PROVISION),
        (S.ACTIVE, "a", UP_A, None),
        (S.ACTIVE, "b", UP_A, Op.REINITIALIZE),
        (S.PAUSED, "a", UP_A, Op.DEPROVISION),
        (S.ENDED, "a", UP_A, Op.DEPROVISION),
        (S.ARCHIVED, "a", UP_A, Op.DEPROVISION),
        (S.PAUSED, "a", DOWN, None),
        (S.PAUSED, "b", NONE, None),
    ],
)
def test_next_operation(status, digest, applied, expected):
    assert pipeline.next_operation(status, digest, applied) == expected


def request(op: Op, digest: str = "a", sequence: int = 1) -> PipelineRequest:
    return PipelineRequest(campaign_id="c", organization_id="o", operation=op, fingerprint=digest,
                           sequence=sequence, reason="active")


def test_confirmed_operations_converge():
    applied = pipeline.after(None, request(Op.PROVISION))
    assert applied.provisioned and applied.fingerprint == "a" and applied.operations == 1
    assert pipeline.next_operation(S.ACTIVE, "a", applied) is None
    applied = pipeline.after(applied, request(Op.REINITIALIZE, "b", 2))
    assert pipeline.next_operation(S.ACTIVE, "b", applied) is None
    applied = pipeline.after(applied, request(Op.DEPROVISION, "b", 3))
    assert not applied.provisioned and applied.operations == 3
    assert pipeline.next_operation(S.PAUSED, "b", applied) is None


def test_a_refusal_is_not_retried_until_something_changes():
    applied = pipeline.refused(None, request(Op.PROVISION), S.ACTIVE, "400 bad flow")
    assert applied.refusal == "400 bad flow"
    assert pipeline.next_operation(S.ACTIVE, "a", applied) is None
    assert pipeline.next_operation(S.ACTIVE, "b", applied) == Op.PROVISION  # configuration changed
    assert pipeline.next_operation(S.PAUSED, "a", applied) is None  # never provisioned: nothing to undo


def test_fingerprint_tracks_only_what_the_pipeline_uses():
    a = pipeline.fingerprint("flow", {"speakingRate": 1.0}, ["kb-1"])
    assert a == pipeline.fingerprint("flow", {"speakingRate": 1.0}, ["kb-1"])
    assert a != pipeline.fingerprint("flow", {"speakingRate": 1.1}, ["kb-1"])
    assert a != pipeline.fingerprint("flow", {"speakingRate": 1.0}, ["kb-2"])
    assert a != pipeline.fingerprint("flow-2", {"speakingRate": 1.0}, ["kb-1"])

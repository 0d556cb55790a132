"""What the voice-AI pipeline must be told, decided from the campaign's status and the
part of its configuration the pipeline uses. Pure, so the campaign workflow uses it.

The pipeline holds a campaign only while it is active: activating or resuming
*provisions* it, pausing, ending or archiving *deprovisions* it, and a change of flow,
voice settings or knowledge bases while it is provisioned *reinitializes* it. The
workflow compares what it wants with what the pipeline last confirmed and sends one
operation at a time, so the pipeline sees them in order however long it was down.
"""

from __future__ import annotations

import hashlib
import json
from enum import StrEnum
from typing import Any

from pydantic import BaseModel

from campaigns.domain.config import CampaignStatus


class PipelineOperation(StrEnum):
    PROVISION = "provision"
    REINITIALIZE = "reinitialize"
    DEPROVISION = "deprovision"


class PipelineApplied(BaseModel):
    """What the pipeline last confirmed for a campaign (part of the workflow's state)."""

    provisioned: bool = False
    fingerprint: str = ""  # of the configuration it was provisioned with
    operations: int = 0  # operations sent so far; numbers each one's idempotency key
    refused: str | None = None  # the wish the pipeline refused; not retried until it changes
    refusal: str | None = None  # why


class PipelineRequest(BaseModel):
    """One operation for the pipeline activity; `sequence` makes its idempotency key."""

    campaign_id: str
    organization_id: str
    operation: PipelineOperation
    fingerprint: str
    sequence: int
    reason: str  # the campaign status that asked for it


class PipelineResult(BaseModel):
    done: bool  # False: the pipeline is not configured here, nothing was sent
    detail: str = ""


class KnowledgeBaseCheck(BaseModel):
    campaign_id: str
    organization_id: str


def fingerprint(flow_id: str | None, voice_settings: dict[str, Any], knowledge_base_ids: list[str]) -> str:
    """A short digest of what the pipeline runs a campaign with: equal configurations give
    equal digests, so only a real change reinitializes it."""
    canonical = json.dumps(
        {"flowId": flow_id, "voiceSettings": voice_settings, "knowledgeBaseIds": knowledge_base_ids},
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hashlib.sha256(canonical.encode()).hexdigest()[:16]


def _wish(status: CampaignStatus, digest: str) -> str:
    return f"up:{digest}" if status == CampaignStatus.ACTIVE else "down"


def next_operation(status: CampaignStatus, digest: str, applied: PipelineApplied | None) -> PipelineOperation | None:
    """The operation that brings the pipeline to what `status` and the configuration want."""
    applied = applied or PipelineApplied()
    if applied.refused == _wish(status, digest):
        return None
    if status == CampaignStatus.ACTIVE:
        if not applied.provisioned:
            return PipelineOperation.PROVISION
        if applied.fingerprint != digest:
            return PipelineOperation.REINITIALIZE
        return None
    return PipelineOperation.DEPROVISION if applied.provisioned else None


def after(applied: PipelineApplied | None, request: PipelineRequest) -> PipelineApplied:
    """What the pipeline holds once it confirmed `request`."""
    applied = applied or PipelineApplied()
    provisioned = request.operation != PipelineOperation.DEPROVISION
    return PipelineApplied(
        provisioned=provisioned,
        fingerprint=request.fingerprint if provisioned else "",
        operations=max(applied.operations, request.sequence),
    )


def refused(
    applied: PipelineApplied | None, request: PipelineRequest, status: CampaignStatus, why: str
) -> PipelineApplied:
    """The pipeline refused `request` for good: remember the wish so it is not retried
    until the status or the configuration changes."""
    applied = applied or PipelineApplied()
    return applied.model_copy(
        update={
            "operations": max(applied.operations, request.sequence),
            "refused": _wish(status, request.fingerprint),
            "refusal": why[:500],
        }
    )

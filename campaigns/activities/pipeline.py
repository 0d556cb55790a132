"""Activities that talk to the voice-AI pipeline and the knowledge-base service.

Both are idempotent: a pipeline operation carries the same idempotency key on every
retry (and provisioning is a PUT of the whole desired state); a knowledge-base check
only reads.
"""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID

import asyncpg
from temporalio import activity
from temporalio.exceptions import ApplicationError

from campaigns.campaigns import repository as repo
from campaigns.clients.knowledge_bases import KnowledgeBases, KnowledgeBaseUnavailable
from campaigns.clients.pipeline import Pipeline, PipelineError
from campaigns.domain.config import CampaignConfiguration
from campaigns.domain.pipeline import (
    KnowledgeBaseCheck,
    PipelineOperation,
    PipelineRequest,
    PipelineResult,
)
from campaigns.messages import campaign as m
from campaigns.settings import Settings

PIPELINE_REFUSED = "pipeline_refused"


class PipelineActivities:
    def __init__(self, pool: asyncpg.Pool, settings: Settings) -> None:
        self.pool = pool
        self.pipeline = Pipeline(settings)
        self.knowledge_bases = KnowledgeBases(settings)

    @activity.defn(name=m.SYNC_PIPELINE)
    async def sync_pipeline(self, request: PipelineRequest) -> PipelineResult:
        """Send one operation to the pipeline. Retried by Temporal until it answers; a
        refusal (a 4xx other than 408/425/429) fails for good with type `pipeline_refused`."""
        if not self.pipeline.configured:
            return PipelineResult(done=False, detail="no pipeline configured (PIPELINE_URL)")
        key = f"{request.campaign_id}:{request.sequence}:{request.operation.value}"
        try:
            if request.operation == PipelineOperation.DEPROVISION:
                await self.pipeline.deprovision(request.campaign_id, reason=request.reason, idempotency_key=key)
                return PipelineResult(done=True)
            row = await repo.get_any(self.pool, UUID(request.campaign_id))
            if row is None:
                raise ApplicationError("campaign not found", type=PIPELINE_REFUSED, non_retryable=True)
            config = CampaignConfiguration.model_validate(row["config"])
            body = {
                "campaignId": request.campaign_id,
                "organizationId": request.organization_id,
                "name": row["name"],
                "type": row["type"],
                "channel": row["channel"],
                "status": "active",
                "timezone": config.timezone,
                "flowId": config.flow_id,
                "voiceSettings": config.voice_settings.model_dump(mode="json", by_alias=True),
                "knowledgeBaseIds": config.knowledge_base_ids,
                "configFingerprint": request.fingerprint,
            }
            if request.operation == PipelineOperation.PROVISION:
                await self.pipeline.provision(request.campaign_id, body, idempotency_key=key)
            else:
                await self.pipeline.reinitialize(request.campaign_id, body, idempotency_key=key)
            return PipelineResult(done=True)
        except PipelineError as err:
            if not err.retryable:
                raise ApplicationError(str(err), type=PIPELINE_REFUSED, non_retryable=True) from None
            raise ApplicationError(
                str(err),
                type="pipeline_unavailable",
                next_retry_delay=timedelta(seconds=err.retry_after) if err.retry_after else None,
            ) from None

    @activity.defn(name=m.MISSING_KNOWLEDGE_BASES)
    async def missing_knowledge_bases(self, check: KnowledgeBaseCheck) -> list[str]:
        """The campaign's knowledge bases that no longer exist ([] if none, or if no
        knowledge-base service is configured)."""
        row = await repo.get_any(self.pool, UUID(check.campaign_id))
        if row is None:
            return []
        ids = CampaignConfiguration.model_validate(row["config"]).knowledge_base_ids
        try:
            return await self.knowledge_bases.missing(ids, organization_id=check.organization_id)
        except KnowledgeBaseUnavailable as err:
            raise ApplicationError(str(err), type="knowledge_base_unavailable") from None

    def all(self) -> list:
        return [self.sync_pipeline, self.missing_knowledge_bases]

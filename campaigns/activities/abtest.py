"""Activities of an A/B test's workflow: evaluate it, conclude it, promote its winner.

Each is idempotent: an evaluation is keyed by its sequence number (a retry returns what the
first attempt recorded), a conclusion is written once (a later one returns the first), and a
promotion applies a merge patch through the campaign's audited configuration path, which
records nothing when the patch changes nothing.

"""

from __future__ import annotations

from uuid import UUID

import asyncpg
from temporalio import activity
from temporalio.client import Client

from campaigns.abtests import repository as repo
from campaigns.abtests import service
from campaigns.auth.principals import SystemPrincipal
from campaigns.campaigns import repository as campaigns_repo
from campaigns.campaigns import service as campaigns_service
from campaigns.campaigns.cache import CampaignCache
from campaigns.domain.abtest import decision
from campaigns.domain.config import FINISHED_STATUSES
from campaigns.errors import AppError
from campaigns.messages import abtest as ab
from campaigns.messages.abtest import (
    Conclude,
    Concluded,
    EvaluateRequest,
    Evaluation,
    Promote,
    Promotion,
)
from campaigns.settings import Settings


class ABTestActivities:
    def __init__(
        self, pool: asyncpg.Pool, client: Client, settings: Settings, cache: CampaignCache | None = None
    ) -> None:
        self.pool = pool
        self.client = client
        self.settings = settings
        self.cache = cache  # told of a promotion, so no API process serves the old configuration

    @activity.defn(name=ab.EVALUATE)
    async def evaluate(self, request: EvaluateRequest) -> Evaluation:
        """Look at the test, record the evaluation, and say whether it concludes."""
        test_id = UUID(request.test_id)
        row = await repo.get_by_id(self.pool, test_id)
        if row is None:
            return Evaluation(found=False)
        recorded = await repo.get_evaluation(self.pool, test_id, request.seq)
        if recorded is not None:
            # An earlier attempt recorded it and its reply was lost: answer the same.
            return _from_record(recorded, row)
        campaign_status = await campaigns_repo.status_of(self.pool, row["campaign_id"])
        weights = snapshot = None
        conclusion: decision.Conclusion | None
        if campaign_status in FINISHED_STATUSES:
            conclusion, winner = "stopped", None
            reason = f"the campaign was {campaign_status}"
            running, summary = request.running, {"campaignStatus": campaign_status}
        else:
            design, look, verdict, snapshot = await service.evaluate_row(
                self.pool, row, at=request.at, running=request.running, look_number=request.seq, refresh=True
            )
            conclusion, winner, reason = verdict.conclusion, verdict.winner, verdict.reason
            running, summary = look.running, service.summary(design, look, verdict)
            if conclusion is None:
                weights = decision.bandit_weights(design, look)
        async with self.pool.acquire() as conn, conn.transaction():
            await repo.record_evaluation(
                conn,
                test_id=test_id,
                seq=request.seq,
                at=request.at,
                conclusion=conclusion,
                reason=reason,
                summary=summary,
                running=running,
                weights=weights,
                sums=snapshot.closed if snapshot else None,
                sums_through=snapshot.through if snapshot else None,
            )
        return Evaluation(
            conclusion=conclusion, winner_variant_id=winner, reason=reason, running=running, weights=weights
        )

    @activity.defn(name=ab.CONCLUDE)
    async def conclude(self, request: Conclude) -> Concluded:
        """Conclude the test (assignment stops) and note it in the campaign's audit log."""
        test_id = UUID(request.test_id)
        async with self.pool.acquire() as conn, conn.transaction():
            row = await repo.conclude(
                conn,
                test_id=test_id,
                conclusion=request.conclusion,
                reason=request.reason,
                winner_variant_id=request.winner_variant_id,
                actor=request.actor.model_dump(),
                at=request.at,
            )
            assert row is not None, "a concluded test's row is never deleted while its workflow runs"
            if row["winner_variant_id"] and row["design"].get("autoPromoteWinner") and row["promotion"] is None:
                # Readers see that a promotion is coming, not that none was made.
                pending = Promotion(promoted=False, pending=True, variant_id=row["winner_variant_id"])
                await repo.set_promotion(
                    conn, test_id=test_id, promotion=pending.model_dump(mode="json", by_alias=True)
                )
            await campaigns_repo.add_audit(
                conn,
                organization_id=row["organization_id"],
                campaign_id=row["campaign_id"],
                actor=request.actor.model_dump(),
                action="ab_test_concluded",
                changes={
                    "testId": request.test_id,
                    "conclusion": row["conclusion"],
                    "winnerVariantId": row["winner_variant_id"],
                },
                reason=row["conclusion_reason"],
                dedupe_key=f"ab_test_concluded:{request.test_id}",
                at=request.at,
            )
        return Concluded(
            conclusion=row["conclusion"],
            reason=row["conclusion_reason"],
            winner_variant_id=row["winner_variant_id"],
            concluded_at=row["concluded_at"],
        )

    @activity.defn(name=ab.PROMOTE)
    async def promote(self, request: Promote) -> Promotion:
        """Apply the winner's overrides to the campaign's configuration through the same
        audited path a client's configuration change takes."""
        test_id = UUID(request.test_id)
        row = await repo.get_by_id(self.pool, test_id)
        assert row is not None
        if row["promotion"] and not row["promotion"].get("pending"):
            return Promotion.model_validate(row["promotion"])  # done by an earlier attempt
        variant = next(v for v in service.design_of(row).variants if v.id == request.variant_id)
        # Audited as the system actor naming the test.
        principal = SystemPrincipal(
            organization_id=row["organization_id"],
            organization_name="",
            key_id=test_id,
            key_name="ab-test",
            actor_id=request.test_id,
            actor_name="ab-test-promotion",
        )
        try:
            await campaigns_service.update(  # configuration only: never a pending status change
                pool=self.pool,
                cache=self.cache,
                temporal=self.client,
                settings=self.settings,
                principal=principal,
                campaign_id=row["campaign_id"],
                patch=variant.overrides,
                configuration_only=True,
            )
            promotion = Promotion(promoted=True, variant_id=variant.id, changes=variant.overrides)
        except AppError as err:
            # The campaign changed since the test began (archived, a voice that no longer fits
            # its language…): the conclusion stands, the promotion is reported as refused.
            promotion = Promotion(promoted=False, variant_id=variant.id, error=f"{err.code}: {err.message}")
        await repo.set_promotion(self.pool, test_id=test_id, promotion=promotion.model_dump(mode="json", by_alias=True))
        return promotion

    def all(self) -> list:
        return [self.evaluate, self.conclude, self.promote]


def _from_record(recorded: asyncpg.Record, row: asyncpg.Record) -> Evaluation:
    """The evaluation an earlier attempt recorded (its running state is the row's: the row
    moves on only with a new evaluation, and the workflow waits for this one)."""
    return Evaluation(
        conclusion=recorded["conclusion"],
        winner_variant_id=(recorded["summary"] or {}).get("winner"),
        reason=recorded["reason"],
        running=row["running"] or {},
        weights=recorded["weights"],
    )

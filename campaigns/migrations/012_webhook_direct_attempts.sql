-- The first attempt of a delivery is made by a dispatcher straight from the row; only a
-- delivery whose first attempt fails is handed to a WebhookDeliveryWorkflow for its retries.
--
-- `direct`: the next attempt is a dispatcher's (true), or the workflow's (false: rows made
-- before this migration, and deliveries handed over after a failed first attempt).
-- `claim` and `claimed_until`: who holds the row and until when. A dispatcher sends only
-- while it holds an unexpired claim and records only if the claim is still its own; a claim
-- that lapses (its holder died) lets any dispatcher take the row again. On a handed-over
-- row, `claimed_until` is when the sweep starts the workflow if the sender did not.
-- '-infinity': nobody holds it, due now.
ALTER TABLE webhook_deliveries
    ADD COLUMN direct boolean NOT NULL DEFAULT false,
    ADD COLUMN claim uuid,
    ADD COLUMN claimed_until timestamptz NOT NULL DEFAULT '-infinity';

-- Deliveries awaiting a dispatcher: a direct attempt to (re)make, or a workflow to start.
-- A direct success never starts a workflow, so the old index on NOT workflow_started would
-- grow with every delivery; this one holds only pending rows.
DROP INDEX webhook_deliveries_unstarted;
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (claimed_until)
    WHERE status = 'pending' AND NOT workflow_started;

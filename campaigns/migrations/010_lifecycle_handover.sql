-- The hand-over between a campaign's row and its workflow, made durable.

-- A draft is a row: its workflow starts with its first lifecycle request, which sets this
-- (in its own transaction, before the workflow may start). From then on every configuration
-- change its workflow acts on goes through campaign_config_outbox.
ALTER TABLE campaigns ADD COLUMN workflow_requested_at timestamptz;
UPDATE campaigns SET workflow_requested_at = created_at;  -- campaigns created before had one from the start

-- Configuration versions a campaign's workflow has still to learn, written in the
-- configuration's transaction. One row per campaign: the workflow ignores versions older
-- than the one it has, so the newest is all it needs. Deleted once a signal carrying that
-- version (or a newer one) was accepted; until then the relay retries it.
CREATE TABLE campaign_config_outbox (
    campaign_id      uuid PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    version          integer NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaign_config_outbox_due ON campaign_config_outbox (next_attempt_at);

-- Status changes clients asked for, recorded before the workflow is asked: the id is the
-- Temporal update id, so every re-send of a request is the same update. 'pending' until
-- the workflow applies it (the persist activity marks it in the transition's transaction)
-- or refuses it; the relay re-sends pending requests until it answers.
CREATE TABLE status_requests (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL,
    campaign_id      uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    idempotency_key  text,
    request_hash     bytea NOT NULL,
    target           text NOT NULL,
    reason           text,
    actor            jsonb NOT NULL,
    state            text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'applied', 'rejected')),
    -- applied: {"status": …} reached; rejected: {"status": 409, "code", "error", "details"}
    outcome          jsonb,
    requested_at     timestamptz NOT NULL DEFAULT now(),
    resolved_at      timestamptz,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    last_error       text,
    UNIQUE (organization_id, idempotency_key)
);
CREATE INDEX status_requests_pending ON status_requests (campaign_id, requested_at) WHERE state = 'pending';
CREATE INDEX status_requests_due ON status_requests (next_attempt_at) WHERE state = 'pending';
CREATE INDEX status_requests_resolved ON status_requests (resolved_at) WHERE state <> 'pending';

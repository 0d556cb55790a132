-- Analytics: the append-only record of call, lead, conversion, cost and widget events,
-- the outbox that hands each accepted batch to the derived views, and the 15-minute
-- rollups those views are made of. Everything except analytics_events can be rebuilt
-- from it (`campaigns rebuild-analytics`).

-- The record. One row per event; the client's id, scoped to its organization, is the
-- identity, so a retried or concurrent batch can never store an event twice. No foreign
-- key to campaigns: campaigns are never deleted, and a per-row RI check would cost more
-- than the rest of the insert.
CREATE TABLE analytics_events (
    organization_id  uuid NOT NULL,
    event_id         text NOT NULL,
    campaign_id      uuid NOT NULL,
    type             text NOT NULL,
    occurred_at      timestamptz NOT NULL,
    received_at      timestamptz NOT NULL DEFAULT now(),
    variant_id       text,
    subject_id       text,
    call_id          text,
    data             jsonb NOT NULL DEFAULT '{}',
    PRIMARY KEY (organization_id, event_id)
);
CREATE INDEX analytics_events_campaign_time ON analytics_events (campaign_id, occurred_at);

CREATE FUNCTION analytics_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'analytics_events is append-only';
END $$;
CREATE TRIGGER analytics_events_append_only
    BEFORE UPDATE OR DELETE ON analytics_events
    FOR EACH STATEMENT EXECUTE FUNCTION analytics_events_append_only();

-- One row per accepted batch, written in the batch's transaction: what it adds to the
-- rollups, the summary and the real-time counters. The refresher applies each row once
-- and deletes it in the same transaction, which is what makes the derived numbers
-- exactly-once. `payload` is the batch's delta, JSON encoded.
CREATE TABLE analytics_outbox (
    id          bigserial PRIMARY KEY,
    batch_id    uuid NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    payload     bytea NOT NULL
);
-- Short-lived: compressing it would cost more than it saves.
ALTER TABLE analytics_outbox ALTER COLUMN payload SET STORAGE EXTERNAL;

-- Sufficient statistics per campaign, 15-minute UTC slot and variant ('' for none):
-- counts, sums and sums of squares, money in integer micro-units. Fifteen minutes divides
-- every offset in use, so local days and hours in any campaign timezone are exact unions
-- of slots. Columns mirror campaigns/domain/metrics.py.
CREATE TABLE analytics_rollups (
    campaign_id            uuid NOT NULL,
    bucket                 timestamptz NOT NULL,
    variant_id             text NOT NULL DEFAULT '',
    calls_started          bigint NOT NULL DEFAULT 0,
    calls_completed        bigint NOT NULL DEFAULT 0,
    calls_connected        bigint NOT NULL DEFAULT 0,
    calls_failed           bigint NOT NULL DEFAULT 0,
    duration_sum           double precision NOT NULL DEFAULT 0,
    duration_sq            double precision NOT NULL DEFAULT 0,
    wait_count             bigint NOT NULL DEFAULT 0,
    wait_sum               double precision NOT NULL DEFAULT 0,
    wait_sq                double precision NOT NULL DEFAULT 0,
    satisfaction_count     bigint NOT NULL DEFAULT 0,
    satisfaction_sum       double precision NOT NULL DEFAULT 0,
    satisfaction_sq        double precision NOT NULL DEFAULT 0,
    leads                  bigint NOT NULL DEFAULT 0,
    lead_score_sum         double precision NOT NULL DEFAULT 0,
    lead_score_sq          double precision NOT NULL DEFAULT 0,
    conversions            bigint NOT NULL DEFAULT 0,
    revenue_micros         bigint NOT NULL DEFAULT 0,
    revenue_sq             double precision NOT NULL DEFAULT 0,
    cost_micros            bigint NOT NULL DEFAULT 0,
    cost_telephony_micros  bigint NOT NULL DEFAULT 0,
    cost_stt_micros        bigint NOT NULL DEFAULT 0,
    cost_tts_micros        bigint NOT NULL DEFAULT 0,
    cost_llm_micros        bigint NOT NULL DEFAULT 0,
    cost_other_micros      bigint NOT NULL DEFAULT 0,
    widget_impressions     bigint NOT NULL DEFAULT 0,
    widget_clicks          bigint NOT NULL DEFAULT 0,
    widget_displays        bigint NOT NULL DEFAULT 0,
    display_ms_sum         double precision NOT NULL DEFAULT 0,
    display_ms_sq          double precision NOT NULL DEFAULT 0,
    PRIMARY KEY (campaign_id, bucket, variant_id)
);

-- The performance summary lists sort on gets the raw sums its rates are made of, and a
-- cost per lead that is unknown (NULL, sorted last) rather than 0 while there are no leads.
ALTER TABLE campaign_performance
    ADD COLUMN connected_calls  bigint NOT NULL DEFAULT 0,
    ADD COLUMN failed_calls     bigint NOT NULL DEFAULT 0,
    ADD COLUMN duration_sum     double precision NOT NULL DEFAULT 0,
    ADD COLUMN widget_clicks    bigint NOT NULL DEFAULT 0,
    ADD COLUMN last_event_at    timestamptz,
    ALTER COLUMN cost_per_lead DROP NOT NULL,
    ALTER COLUMN cost_per_lead DROP DEFAULT;
UPDATE campaign_performance SET cost_per_lead = NULL WHERE qualified_leads = 0;
CREATE INDEX campaign_performance_org_cost ON campaign_performance (organization_id, total_cost DESC);
CREATE INDEX campaign_performance_org_calls ON campaign_performance (organization_id, total_calls DESC);

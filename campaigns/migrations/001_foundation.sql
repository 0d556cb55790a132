-- Organizations, API keys, campaigns (a projection of each campaign workflow's status,
-- plus the configuration Postgres owns), the audit log, platform events and the
-- performance summary that lists sort on.

CREATE TABLE organizations (
    id          uuid PRIMARY KEY,
    name        text NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE api_keys (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    name             text NOT NULL,
    prefix           text NOT NULL,           -- shown in listings; the key itself is never stored
    key_hash         bytea NOT NULL UNIQUE,   -- sha256 of the whole key
    created_at       timestamptz NOT NULL DEFAULT now(),
    last_used_at     timestamptz,
    revoked_at       timestamptz
);
CREATE INDEX api_keys_organization ON api_keys (organization_id);

CREATE TABLE campaigns (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    user_id          text NOT NULL,
    name             text NOT NULL,
    description      text,
    status           text NOT NULL,
    status_reason    text,
    type             text NOT NULL,
    channel          text NOT NULL,
    timezone         text NOT NULL,
    config           jsonb NOT NULL,          -- CampaignConfiguration, camelCase JSON
    version          integer NOT NULL DEFAULT 1,
    last_event_seq   bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    status_changed_at timestamptz,
    started_at       timestamptz,
    ended_at         timestamptz
);
CREATE INDEX campaigns_org_status ON campaigns (organization_id, status, updated_at DESC);
CREATE INDEX campaigns_org_created ON campaigns (organization_id, created_at DESC, id DESC);

-- Summary of each campaign's performance, kept fresh by the analytics side so lists
-- can sort and filter on it without computing anything per request.
CREATE TABLE campaign_performance (
    campaign_id            uuid PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    organization_id        uuid NOT NULL,
    total_calls            bigint NOT NULL DEFAULT 0,
    completed_calls        bigint NOT NULL DEFAULT 0,
    qualified_leads        bigint NOT NULL DEFAULT 0,
    conversions            bigint NOT NULL DEFAULT 0,
    conversion_rate        double precision NOT NULL DEFAULT 0,
    average_call_duration  double precision NOT NULL DEFAULT 0,
    total_cost             numeric(18, 6) NOT NULL DEFAULT 0,
    cost_per_lead          numeric(18, 6) NOT NULL DEFAULT 0,
    revenue                numeric(18, 6) NOT NULL DEFAULT 0,
    cost_by_category       jsonb NOT NULL DEFAULT '{}',
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX campaign_performance_org_conv ON campaign_performance (organization_id, conversion_rate DESC);
CREATE INDEX campaign_performance_org_leads ON campaign_performance (organization_id, qualified_leads DESC);
CREATE INDEX campaign_performance_org_cpl ON campaign_performance (organization_id, cost_per_lead);

-- A retried create with the same Idempotency-Key returns the first campaign.
CREATE TABLE idempotency_keys (
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    key              text NOT NULL,
    request_hash     bytea NOT NULL,
    campaign_id      uuid NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (organization_id, key)
);

CREATE TABLE audit_log (
    id               bigserial PRIMARY KEY,
    organization_id  uuid NOT NULL,
    campaign_id      uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    actor            jsonb NOT NULL,          -- {kind, id, name}
    action           text NOT NULL,           -- created, updated, configuration_changed, status_changed, cloned
    changes          jsonb NOT NULL DEFAULT '{}',
    reason           text,
    dedupe_key       text UNIQUE,             -- set by workflow activities so a retry writes once
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_campaign ON audit_log (campaign_id, id);

-- Platform events (campaign.activated, goal.achieved, …) with a per-campaign sequence
-- number so receivers can order them. Append-only; the id makes recording idempotent.
CREATE TABLE domain_events (
    id               uuid PRIMARY KEY,
    organization_id  uuid NOT NULL,
    campaign_id      uuid REFERENCES campaigns (id) ON DELETE CASCADE,
    seq              bigint,
    type             text NOT NULL,
    data             jsonb NOT NULL DEFAULT '{}',
    occurred_at      timestamptz NOT NULL,
    recorded_at      timestamptz NOT NULL DEFAULT now(),
    UNIQUE (campaign_id, seq)
);
CREATE INDEX domain_events_org_time ON domain_events (organization_id, occurred_at);

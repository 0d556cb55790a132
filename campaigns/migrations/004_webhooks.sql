-- Webhook endpoints (and the integrations that ride the same engine), their deliveries
-- and every HTTP attempt, plus the outbox that hands each recorded platform event to the
-- dispatcher exactly once.

CREATE TABLE webhook_endpoints (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL REFERENCES organizations (id),
    campaign_id        uuid REFERENCES campaigns (id) ON DELETE CASCADE,  -- NULL: every campaign
    kind               text NOT NULL DEFAULT 'webhook',   -- webhook | http_push | slack
    name               text,
    description        text,
    url                text NOT NULL,
    event_types        text[] NOT NULL,                   -- exact names or 'campaign.*' prefixes
    headers            jsonb NOT NULL DEFAULT '{}',
    config             jsonb NOT NULL DEFAULT '{}',       -- an integration's own settings
    retry_config       jsonb NOT NULL DEFAULT '{}',
    max_concurrency    integer NOT NULL DEFAULT 10,
    enabled            boolean NOT NULL DEFAULT true,
    disabled_reason    text,                              -- manual | gone | failing
    disabled_at        timestamptz,
    secret             text NOT NULL,                     -- Fernet ciphertext of whsec_…
    previous_secret    text,                              -- still signs until previous_secret_expires_at
    previous_secret_expires_at timestamptz,
    failing_since      timestamptz,                       -- start of the current run of failures
    last_success_at    timestamptz,
    last_failure_at    timestamptz,
    version            integer NOT NULL DEFAULT 1,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (organization_id, created_at);
CREATE INDEX webhook_endpoints_campaign ON webhook_endpoints (campaign_id, created_at);

-- One delivery per (event, endpoint); its id is derived from both, and so is the id of the
-- workflow that drives it. `body` is the exact text signed and sent on every attempt.
CREATE TABLE webhook_deliveries (
    id                 uuid PRIMARY KEY,
    endpoint_id        uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    organization_id    uuid NOT NULL,
    event_id           uuid,                              -- NULL for webhook.test pings
    event_type         text NOT NULL,
    campaign_id        uuid,
    sequence           bigint,
    body               text NOT NULL,
    status             text NOT NULL DEFAULT 'pending',   -- pending | succeeded | failed | cancelled
    attempts           integer NOT NULL DEFAULT 0,
    run                integer NOT NULL DEFAULT 0,        -- 0 the original send, n the nth redelivery
    last_status_code   integer,
    last_error_class   text,
    last_error         text,
    next_attempt_at    timestamptz,
    workflow_started   boolean NOT NULL DEFAULT false,
    created_at         timestamptz NOT NULL DEFAULT now(),
    completed_at       timestamptz,
    UNIQUE (event_id, endpoint_id)
);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id, created_at DESC, id);
CREATE INDEX webhook_deliveries_endpoint_status ON webhook_deliveries (endpoint_id, status, created_at);
CREATE INDEX webhook_deliveries_unstarted ON webhook_deliveries (created_at) WHERE NOT workflow_started;
CREATE INDEX webhook_deliveries_finished ON webhook_deliveries (completed_at) WHERE status <> 'pending';

CREATE TABLE webhook_attempts (
    id                 bigserial PRIMARY KEY,
    delivery_id        uuid NOT NULL REFERENCES webhook_deliveries (id) ON DELETE CASCADE,
    run                integer NOT NULL,
    attempt            integer NOT NULL,
    started_at         timestamptz NOT NULL,
    latency_ms         double precision,
    status_code        integer,
    response_excerpt   text,
    error_class        text,                              -- dns | connect | timeout | tls | blocked | http
    error              text,
    retry_after_s      double precision,
    UNIQUE (delivery_id, run, attempt)                    -- a retried activity rewrites its own row
);

-- The outbox: every event recorded, by whatever path, lands here in the same transaction,
-- and a NOTIFY at commit wakes the dispatcher. The dispatcher deletes a row in the same
-- transaction that creates the event's deliveries, so an event is fanned out exactly once
-- even if a worker dies in between.
CREATE TABLE webhook_outbox (
    id        bigserial PRIMARY KEY,
    event_id  uuid NOT NULL UNIQUE
);

CREATE FUNCTION webhook_outbox_enqueue() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO webhook_outbox (event_id) VALUES (NEW.id) ON CONFLICT DO NOTHING;
    PERFORM pg_notify('webhook_outbox', '');
    RETURN NULL;
END
$$;

CREATE TRIGGER domain_events_webhook_outbox AFTER INSERT ON domain_events
    FOR EACH ROW EXECUTE FUNCTION webhook_outbox_enqueue();

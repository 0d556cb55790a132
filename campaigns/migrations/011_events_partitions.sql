-- The event record by month, with a retention; and outbox rows that wait for Redis only.
--
-- 1. analytics_events is partitioned by occurred_at (one partition per UTC month), so old
--    events go by dropping whole partitions (ANALYTICS_RETENTION_DAYS); the rollups, the
--    summary and everything derived stay. A partitioned table's unique index must contain
--    the partition key, so the identity of an event (organization, id) is kept unique in a
--    table of its own, analytics_event_ids, which ingestion fills first: a retried or
--    concurrent batch is settled there as before. Its rows go with their month's partition;
--    events older than the retention are refused, so an id forgotten that way could only
--    come back on an event that would be refused anyway (unless a client resends an id with
--    a newer occurredAt, which is a new event by then).
-- 2. analytics_retention remembers up to when events were dropped, so a rebuild recomputes
--    only the rollups it still has the events of.
-- 3. analytics_outbox.derived_at: the batch is in the rollups and the summary, and waits only
--    to be applied to Redis (which was unavailable when the refresher took it).
-- Existing events are kept: copied into the new partitions, their ids into the id table.

ALTER TABLE analytics_outbox ADD COLUMN derived_at timestamptz;

CREATE TABLE analytics_event_ids (
    organization_id  uuid NOT NULL,
    event_id         text NOT NULL,
    occurred_at      timestamptz NOT NULL,
    PRIMARY KEY (organization_id, event_id)
);
-- Rows arrive roughly in time order: a block range index finds a month's ids for little upkeep.
CREATE INDEX analytics_event_ids_occurred ON analytics_event_ids USING brin (occurred_at);

CREATE TABLE analytics_retention (
    only_row        boolean PRIMARY KEY DEFAULT true CHECK (only_row),
    dropped_before  timestamptz NOT NULL DEFAULT '-infinity'  -- events before this are gone
);
INSERT INTO analytics_retention DEFAULT VALUES;

ALTER TABLE analytics_events RENAME TO analytics_events_unpartitioned;
ALTER INDEX analytics_events_campaign_time RENAME TO analytics_events_unpartitioned_campaign_time;
ALTER TABLE analytics_events_unpartitioned RENAME CONSTRAINT analytics_events_pkey TO analytics_events_unpartitioned_pkey;

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
    data             jsonb NOT NULL DEFAULT '{}'
) PARTITION BY RANGE (occurred_at);
CREATE INDEX analytics_events_campaign_time ON analytics_events (campaign_id, occurred_at);
-- Per row, so that every partition inherits it (statement triggers stay on the parent).
CREATE TRIGGER analytics_events_append_only
    BEFORE UPDATE OR DELETE ON analytics_events
    FOR EACH ROW EXECUTE FUNCTION analytics_events_append_only();

-- The partition of the UTC month holding `day` (created if missing); returns its name.
CREATE FUNCTION analytics_events_partition(day date) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
    first date := date_trunc('month', day)::date;
    name text := 'analytics_events_' || to_char(first, 'YYYY_MM');
BEGIN
    IF to_regclass(name) IS NULL THEN
        EXECUTE format(
            'CREATE TABLE %I PARTITION OF analytics_events FOR VALUES FROM (%L) TO (%L)',
            name, first::text || ' 00:00:00+00', (first + interval '1 month')::date::text || ' 00:00:00+00'
        );
    END IF;
    RETURN name;
END $$;

SELECT analytics_events_partition(month::date)
FROM generate_series(
    date_trunc('month', least(coalesce((SELECT min(occurred_at) FROM analytics_events_unpartitioned), now()),
                              now() - interval '366 days') AT TIME ZONE 'UTC'),
    date_trunc('month', (now() + interval '2 months') AT TIME ZONE 'UTC'),
    interval '1 month'
) AS month;

INSERT INTO analytics_event_ids (organization_id, event_id, occurred_at)
SELECT organization_id, event_id, occurred_at FROM analytics_events_unpartitioned;

INSERT INTO analytics_events
    (organization_id, event_id, campaign_id, type, occurred_at, received_at, variant_id, subject_id, call_id, data)
SELECT organization_id, event_id, campaign_id, type, occurred_at, received_at, variant_id, subject_id, call_id, data
FROM analytics_events_unpartitioned;

DROP TABLE analytics_events_unpartitioned;

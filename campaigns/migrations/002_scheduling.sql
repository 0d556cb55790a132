-- The calling-window projection, written by the campaign workflow (like the status):
-- whether a window is open now and when that next changes. window_updated_at orders the
-- writes, so a late retry of an older one changes nothing.

ALTER TABLE campaigns
    ADD COLUMN window_open         boolean NOT NULL DEFAULT false,
    ADD COLUMN next_window_change  timestamptz,
    ADD COLUMN window_updated_at   timestamptz;

-- Window and status events of a campaign, by type (the benchmark and receivers read them).
CREATE INDEX domain_events_campaign_type ON domain_events (campaign_id, type, occurred_at);

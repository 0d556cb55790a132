-- Platform events (campaign.activated, goal.achieved…) are what webhooks deliver; the name
-- says so, apart from the analytics events (calls, leads, costs) in analytics_events.
-- Renaming keeps the rows, the indexes, the sequence and the webhook outbox trigger.
ALTER TABLE domain_events RENAME TO platform_events;
ALTER INDEX domain_events_org_time RENAME TO platform_events_org_time;
ALTER INDEX domain_events_campaign_type RENAME TO platform_events_campaign_type;
ALTER TRIGGER domain_events_webhook_outbox ON platform_events RENAME TO platform_events_webhook_outbox;
ALTER TABLE platform_events RENAME CONSTRAINT domain_events_pkey TO platform_events_pkey;
ALTER TABLE platform_events RENAME CONSTRAINT domain_events_campaign_id_seq_key TO platform_events_campaign_id_seq_key;

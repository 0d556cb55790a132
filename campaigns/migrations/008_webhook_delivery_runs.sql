-- When the current run of a delivery began: set by a redelivery or recovery, NULL for the
-- original run (which began at created_at). A run older than WEBHOOK_MAX_DELIVERY_AGE_S is
-- given up, so a delivery's retries always end.
ALTER TABLE webhook_deliveries ADD COLUMN run_started_at timestamptz;

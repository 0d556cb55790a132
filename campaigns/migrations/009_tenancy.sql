-- What each API key may do. Keys made before scopes existed could do everything: they
-- keep that as `admin`.
ALTER TABLE api_keys ADD COLUMN scopes text[] NOT NULL DEFAULT '{admin}';
ALTER TABLE api_keys ALTER COLUMN scopes DROP DEFAULT;
CREATE INDEX api_keys_organization_active ON api_keys (organization_id) WHERE revoked_at IS NULL;

-- A receiver's URL and custom header values are credentials (a Slack webhook URL is its
-- own secret): they are Fernet-encrypted like the signing secrets. Rows written before
-- this are encrypted in place by `campaigns migrate` (and by each worker on start), which
-- sets the flag in the same statement; until then they are read as they are.
ALTER TABLE webhook_endpoints ADD COLUMN credentials_encrypted boolean NOT NULL DEFAULT false;

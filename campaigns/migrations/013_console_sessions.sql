-- Console sessions: a signed cookie carries a random token; only its SHA-256 is kept here.
-- A session belongs to the API key it was opened with, so revoking (or deleting) the key
-- ends every session opened with it: the lookup joins the key and requires it unrevoked.
CREATE TABLE console_sessions (
    token_hash       bytea PRIMARY KEY,
    key_id           uuid NOT NULL REFERENCES api_keys (id) ON DELETE CASCADE,
    organization_id  uuid NOT NULL REFERENCES organizations (id),
    created_at       timestamptz NOT NULL DEFAULT now(),
    expires_at       timestamptz NOT NULL
);
CREATE INDEX console_sessions_key ON console_sessions (key_id);
CREATE INDEX console_sessions_expiry ON console_sessions (expires_at);

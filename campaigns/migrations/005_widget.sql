-- Each campaign's web widget: its settings (one JSON document, see domain/widget.py) and
-- its publishable key. The key is public by design (it sits in the customer's page): it
-- can only send widget events for this campaign, from the allowed origins, so it is
-- stored as is. A row is made the first time the widget is read or written.

CREATE TABLE campaign_widgets (
    campaign_id      uuid PRIMARY KEY REFERENCES campaigns (id) ON DELETE CASCADE,
    organization_id  uuid NOT NULL,
    settings         jsonb NOT NULL,
    publishable_key  text NOT NULL UNIQUE,
    version          integer NOT NULL DEFAULT 1,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);

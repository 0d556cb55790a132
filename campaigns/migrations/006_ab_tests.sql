-- A/B and multivariate tests of a campaign. The test's phase (running, concluded) belongs to
-- its workflow (`abtest-<id>`, a child of the campaign's); the row is its projection, written
-- by the workflow's activities. The design is the resolved configuration (camelCase JSON).

CREATE TABLE ab_tests (
    id                 uuid PRIMARY KEY,
    organization_id    uuid NOT NULL,
    campaign_id        uuid NOT NULL REFERENCES campaigns (id) ON DELETE CASCADE,
    name               text NOT NULL,
    mode               text NOT NULL,            -- fixed | sequential | bandit
    design             jsonb NOT NULL,           -- ABTestDesign
    status             text NOT NULL,            -- running | concluded
    conclusion         text,                     -- winner | no_difference | harm | max_duration | invalid | stopped
    conclusion_reason  text,
    winner_variant_id  text,
    concluded_by       jsonb,                    -- the actor: the workflow itself, or who stopped it
    promotion          jsonb,                    -- {promoted, variantId, changes | error, at}
    weights            jsonb NOT NULL,           -- current traffic weights by variant id
    weights_version    integer NOT NULL DEFAULT 1,
    running            jsonb NOT NULL DEFAULT '{}',  -- sequential state after the latest evaluation
    -- Per-variant sums of the rollup slots before sums_through, as of the latest evaluation:
    -- a results request adds only the slots since (a few rows) instead of re-summing them all.
    sums               jsonb,
    sums_through       timestamptz,
    evaluations        integer NOT NULL DEFAULT 0,
    last_evaluated_at  timestamptz,
    last_summary       jsonb,                    -- the latest evaluation's verdict, for listings
    created_at         timestamptz NOT NULL DEFAULT now(),
    started_at         timestamptz NOT NULL,
    ends_at            timestamptz NOT NULL,     -- started_at + maxDurationDays
    concluded_at       timestamptz,
    updated_at         timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ab_tests_campaign ON ab_tests (campaign_id, created_at DESC);
-- One running test per campaign: a subject must not be in two tests' variants at once.
CREATE UNIQUE INDEX ab_tests_one_running ON ab_tests (campaign_id) WHERE status = 'running';

-- Every evaluation the workflow made: what it saw and what it decided. Keyed by sequence
-- number so a retried activity records it once.
CREATE TABLE ab_test_evaluations (
    test_id       uuid NOT NULL REFERENCES ab_tests (id) ON DELETE CASCADE,
    seq           integer NOT NULL,
    evaluated_at  timestamptz NOT NULL,
    conclusion    text,                         -- null: the test went on
    reason        text NOT NULL,
    summary       jsonb NOT NULL,               -- per variant: units, estimates, lifts, p-values
    weights       jsonb,                        -- bandit: the weights this evaluation set
    PRIMARY KEY (test_id, seq)
);

-- Bandit mode: each set of weights and when it took effect (sample-ratio check per epoch),
-- and each subject's first assignment (weights change, a subject's variant must not).
CREATE TABLE ab_test_weight_epochs (
    test_id         uuid NOT NULL REFERENCES ab_tests (id) ON DELETE CASCADE,
    version         integer NOT NULL,
    effective_from  timestamptz NOT NULL,
    weights         jsonb NOT NULL,
    PRIMARY KEY (test_id, version)
);

CREATE TABLE ab_test_assignments (
    test_id      uuid NOT NULL REFERENCES ab_tests (id) ON DELETE CASCADE,
    subject_id   text NOT NULL,
    variant_id   text NOT NULL,
    epoch        integer NOT NULL,
    assigned_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (test_id, subject_id)
);
CREATE INDEX ab_test_assignments_epoch ON ab_test_assignments (test_id, epoch, variant_id);

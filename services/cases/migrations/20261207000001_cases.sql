-- Pipelines with their phases, and cases with their history through them.

CREATE TABLE pipelines (
    id           uuid        PRIMARY KEY,
    display_name text        NOT NULL,
    -- In order: [{"code", "display_name", "group", "probability"}].
    phases       jsonb       NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    updated_by   text        NOT NULL,
    version      bigint      NOT NULL DEFAULT 1
);

CREATE TABLE cases (
    id                   uuid        PRIMARY KEY,
    pipeline_id          uuid        NOT NULL REFERENCES pipelines,
    title                text        NOT NULL,
    description          text        NOT NULL DEFAULT '',
    kind                 text        NOT NULL CHECK (kind IN ('sales', 'project', 'service', 'internal')),
    owner                text        NOT NULL,
    party_id             uuid,
    person_ids           uuid[]      NOT NULL DEFAULT '{}',
    watchers             text[]      NOT NULL DEFAULT '{}',
    phase                text        NOT NULL,
    status               text        NOT NULL CHECK (status IN ('open', 'won', 'lost')),
    -- Every amount is in `currency_code`.
    currency_code        text        NOT NULL,
    expected_value       numeric     NOT NULL DEFAULT 0,
    probability_override smallint    CHECK (probability_override BETWEEN 0 AND 100),
    -- The probability that applies (the phase's unless overridden), kept for the funnel.
    probability          smallint    NOT NULL CHECK (probability BETWEEN 0 AND 100),
    expected_close_date  date,
    planned_cost         numeric,
    actual_cost          numeric,
    planned_revenue      numeric,
    actual_revenue       numeric,
    document_links       jsonb       NOT NULL DEFAULT '[]',
    lost_reason          text        NOT NULL DEFAULT '',
    closed_at            timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    created_by           text        NOT NULL,
    updated_by           text        NOT NULL,
    version              bigint      NOT NULL DEFAULT 1,
    CHECK ((status = 'open') = (closed_at IS NULL))
);
CREATE INDEX cases_by_pipeline ON cases (pipeline_id, phase, id DESC);
CREATE INDEX cases_by_owner ON cases (owner, id DESC);
CREATE INDEX cases_by_party ON cases (party_id, id DESC) WHERE party_id IS NOT NULL;
CREATE INDEX cases_listed ON cases (id DESC);
CREATE INDEX cases_by_pipeline_only ON cases (pipeline_id, id DESC);
-- Data-subject requests find a person's cases.
CREATE INDEX cases_by_person ON cases USING gin (person_ids);

-- Each passage of a case through a phase.
CREATE TABLE phase_visits (
    case_id    uuid        NOT NULL REFERENCES cases ON DELETE CASCADE,
    phase      text        NOT NULL,
    entered_at timestamptz NOT NULL,
    left_at    timestamptz,
    PRIMARY KEY (case_id, entered_at)
);
-- The phase a case is in now: one open visit.
CREATE UNIQUE INDEX phase_visits_current ON phase_visits (case_id) WHERE left_at IS NULL;

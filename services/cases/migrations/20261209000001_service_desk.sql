-- The service desk: business calendars, SLA policies in their stated order, and tickets with
-- their SLA clocks.

CREATE TABLE calendars (
    id           uuid        PRIMARY KEY,
    display_name text        NOT NULL,
    time_zone    text        NOT NULL,
    -- Monday first: [[{"start": minutes, "end": minutes}, ...] x 7].
    week         jsonb       NOT NULL,
    holidays     date[]      NOT NULL DEFAULT '{}',
    always_open  boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL
);

CREATE TABLE sla_policies (
    id                     uuid        PRIMARY KEY,
    display_name           text        NOT NULL,
    rank                   integer     NOT NULL UNIQUE,
    -- {"kinds", "priorities", "bases", "tiers"}: lists of text; all empty for the default.
    conditions             jsonb       NOT NULL,
    is_default             boolean     NOT NULL,
    calendar_id            uuid        NOT NULL REFERENCES calendars,
    first_response_minutes integer     NOT NULL CHECK (first_response_minutes > 0),
    next_update_minutes    integer     NOT NULL CHECK (next_update_minutes > 0),
    resolution_minutes     integer     NOT NULL CHECK (resolution_minutes > 0),
    near_breach_percent    integer     NOT NULL CHECK (near_breach_percent BETWEEN 1 AND 99),
    -- [{"clock", "level", "action", "to"}].
    escalations            jsonb       NOT NULL DEFAULT '[]',
    created_at             timestamptz NOT NULL DEFAULT now(),
    created_by             text        NOT NULL
);
-- One default policy at most.
CREATE UNIQUE INDEX sla_policies_one_default ON sla_policies (is_default) WHERE is_default;

CREATE TABLE tickets (
    id                uuid        PRIMARY KEY,
    type              text        NOT NULL CHECK (type IN ('complaint', 'return', 'question', 'incident')),
    channel           text        NOT NULL,
    priority          text        NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    subject           text        NOT NULL,
    description       text        NOT NULL DEFAULT '',
    owner             text        NOT NULL DEFAULT '',
    "group"           text        NOT NULL DEFAULT '',
    party_id          uuid        NOT NULL,
    person_id         uuid,
    membership_id     uuid,
    order_reference   text        NOT NULL DEFAULT '',
    invoice_reference text        NOT NULL DEFAULT '',
    status            text        NOT NULL,
    sla_policy_id     uuid        REFERENCES sla_policies,
    -- {"first_response", "next_update", "resolution"}: each {"target", "spent" (seconds),
    -- "running_since", "met_at", "near_announced", "breach_announced"}.
    clocks            jsonb       NOT NULL DEFAULT '{}',
    return_terms      jsonb,
    resolution        text        NOT NULL DEFAULT '',
    resolved_at       timestamptz,
    -- The earliest moment a clock may come near or past its target and is not yet announced:
    -- the alarm sweep's work. Null when nothing is pending.
    next_alarm_at     timestamptz,
    breached          boolean     NOT NULL DEFAULT false,
    -- The earliest due time of a running clock, for "due soon".
    due_at            timestamptz,
    created_at        timestamptz NOT NULL DEFAULT now(),
    updated_at        timestamptz NOT NULL DEFAULT now(),
    created_by        text        NOT NULL,
    updated_by        text        NOT NULL,
    version           bigint      NOT NULL DEFAULT 1
);
CREATE INDEX tickets_listed ON tickets (id DESC);
CREATE INDEX tickets_by_party ON tickets (party_id, id DESC);
CREATE INDEX tickets_by_owner ON tickets (owner, id DESC);
CREATE INDEX tickets_alarms ON tickets (next_alarm_at) WHERE next_alarm_at IS NOT NULL;
CREATE INDEX tickets_due ON tickets (due_at) WHERE due_at IS NOT NULL;

-- The conversation of a ticket: agents' responses and customers' replies.
CREATE TABLE ticket_messages (
    id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    ticket_id   uuid        NOT NULL REFERENCES tickets ON DELETE CASCADE,
    author      text        NOT NULL CHECK (author IN ('agent', 'customer')),
    text        text        NOT NULL,
    at          timestamptz NOT NULL,
    recorded_by text        NOT NULL
);
CREATE INDEX ticket_messages_of ON ticket_messages (ticket_id, id);

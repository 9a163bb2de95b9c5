-- Tasks for operators.

CREATE TABLE tasks (
    id               uuid        PRIMARY KEY,
    title            text        NOT NULL,
    description      text        NOT NULL DEFAULT '',
    assignee         text        NOT NULL,
    due_at           timestamptz,
    priority         text        NOT NULL CHECK (priority IN ('low', 'normal', 'high', 'urgent')),
    status           text        NOT NULL CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
    reminder_times   timestamptz[] NOT NULL DEFAULT '{}',
    party_id         uuid,
    person_id        uuid,
    -- The client and its linked id (a consumer's party and natural person), for erasure.
    client_ids       uuid[]      NOT NULL DEFAULT '{}',
    interaction_id   uuid REFERENCES interactions,
    case_id          uuid,
    completed_at     timestamptz,
    -- The overdue event was sent (once per due time).
    overdue_announced boolean    NOT NULL DEFAULT false,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text        NOT NULL,
    updated_by       text        NOT NULL,
    version          bigint      NOT NULL DEFAULT 1,
    CHECK (party_id IS NULL OR person_id IS NULL),
    CHECK ((status = 'done') = (completed_at IS NOT NULL))
);
-- Lists run soonest due first, tasks without a due time last.
CREATE INDEX tasks_by_assignee ON tasks (assignee, (coalesce(due_at, 'infinity')), id);
CREATE INDEX tasks_due ON tasks ((coalesce(due_at, 'infinity')), id);
CREATE INDEX tasks_by_client ON tasks USING gin (client_ids);
CREATE INDEX tasks_to_announce ON tasks (due_at)
    WHERE NOT overdue_announced AND status IN ('open', 'in_progress');

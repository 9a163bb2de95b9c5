-- Bulk accrual jobs and the members they credit. An item is credited in the transaction that
-- marks it done, so a crash loses no credit and repeats none; a restarted worker resumes with
-- the items still pending.
CREATE TABLE bulk_accruals (
    id             uuid        PRIMARY KEY,
    client_id      text        NOT NULL UNIQUE,
    program_id     uuid        NOT NULL REFERENCES programs (id),
    operation_type text        NOT NULL,
    points         bigint      NOT NULL CHECK (points > 0),
    reference      text        NOT NULL DEFAULT '',
    status         text        NOT NULL DEFAULT 'running' CHECK (status IN ('running', 'completed')),
    total          bigint      NOT NULL,
    done           bigint      NOT NULL DEFAULT 0,
    failed         bigint      NOT NULL DEFAULT 0,
    created_by     text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    completed_at   timestamptz
);
CREATE INDEX bulk_accruals_running ON bulk_accruals (created_at) WHERE status = 'running';

CREATE TABLE bulk_accrual_items (
    job_id        uuid NOT NULL REFERENCES bulk_accruals (id),
    membership_id uuid NOT NULL REFERENCES memberships (id),
    status        text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'done', 'failed')),
    PRIMARY KEY (job_id, membership_id)
);
CREATE INDEX bulk_accrual_items_pending ON bulk_accrual_items (job_id, membership_id) WHERE status = 'pending';

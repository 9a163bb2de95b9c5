-- Loyalty cards. A child card points at its parent; a reissued card at the card it replaced.
CREATE TABLE cards (
    id            uuid        PRIMARY KEY,
    number        text        NOT NULL UNIQUE CHECK (number ~ '^[0-9]{16}$'),
    membership_id uuid        NOT NULL REFERENCES memberships (id),
    person_id     uuid,
    parent_id     uuid        REFERENCES cards (id),
    status        text        NOT NULL DEFAULT 'issued' CHECK (status IN ('issued', 'active', 'blocked', 'closed')),
    block_reason  text        NOT NULL DEFAULT '',
    replaces_id   uuid        UNIQUE REFERENCES cards (id),
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    updated_by    text        NOT NULL
);
CREATE INDEX cards_membership ON cards (membership_id, id DESC);

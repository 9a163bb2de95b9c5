-- The contact history and notes.

CREATE TABLE interactions (
    id                  uuid        PRIMARY KEY,
    channel             text        NOT NULL CHECK (channel IN ('phone_call', 'email', 'fax',
                            'meeting', 'chat', 'web_form', 'sms', 'social', 'letter')),
    direction           text        NOT NULL CHECK (direction IN ('inbound', 'outbound')),
    subject             text        NOT NULL DEFAULT '',
    body                text        NOT NULL DEFAULT '',
    occurred_at         timestamptz NOT NULL,
    duration_seconds    integer     NOT NULL DEFAULT 0 CHECK (duration_seconds >= 0),
    outcome             text        NOT NULL DEFAULT '',
    participants        jsonb       NOT NULL,
    links               jsonb       NOT NULL DEFAULT '[]',
    attachments         jsonb       NOT NULL DEFAULT '[]',
    dialled_number      text        NOT NULL DEFAULT '',
    recording_reference text        NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          text        NOT NULL,
    updated_by          text        NOT NULL,
    version             bigint      NOT NULL DEFAULT 1
);

-- Whom each interaction is about, in the order a client's history is read: newest first. A consumer
-- is both a party and its natural person: both ids are written, so the history is one whichever
-- the contact named, and an erasure of either finds it. Organizations are kept apart: their
-- history is the company's, not personal data.
CREATE TABLE interaction_clients (
    interaction_id uuid        NOT NULL REFERENCES interactions ON DELETE CASCADE,
    client_id      uuid        NOT NULL,
    client_kind    text        NOT NULL CHECK (client_kind IN ('person', 'organization')),
    -- The client's other id (a consumer's natural person for its party, and back).
    linked_id      uuid,
    occurred_at    timestamptz NOT NULL,
    PRIMARY KEY (client_id, interaction_id)
);
CREATE INDEX interaction_clients_history
    ON interaction_clients (client_id, occurred_at DESC, interaction_id DESC);
CREATE INDEX interactions_history ON interactions (occurred_at DESC, id DESC);

CREATE TABLE notes (
    id             uuid        PRIMARY KEY,
    party_id       uuid,
    person_id      uuid,
    interaction_id uuid REFERENCES interactions,
    task_id        uuid,
    case_id        uuid,
    text           text        NOT NULL,
    -- The party or person and its linked id (a consumer's party and natural person), for erasure.
    client_ids     uuid[]      NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text        NOT NULL,
    updated_by     text        NOT NULL,
    version        bigint      NOT NULL DEFAULT 1,
    CHECK ((party_id IS NULL) <> (person_id IS NULL))
);
CREATE INDEX notes_by_party ON notes (party_id, id DESC) WHERE party_id IS NOT NULL;
CREATE INDEX notes_by_person ON notes (person_id, id DESC) WHERE person_id IS NOT NULL;
CREATE INDEX notes_by_interaction ON notes (interaction_id, id DESC) WHERE interaction_id IS NOT NULL;
CREATE INDEX notes_by_client ON notes USING gin (client_ids);

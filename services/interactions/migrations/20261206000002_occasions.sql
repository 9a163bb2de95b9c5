-- Birthdays, name days and anniversaries of persons who have an owner, read from parties, and the
-- reminder tasks made for them.

CREATE TABLE occasions (
    person_id   uuid     NOT NULL,
    kind        text     NOT NULL CHECK (kind IN ('birthday', 'name_day', 'anniversary')),
    -- What an anniversary celebrates; empty otherwise.
    label       text     NOT NULL DEFAULT '',
    month       smallint NOT NULL CHECK (month BETWEEN 1 AND 12),
    day         smallint NOT NULL CHECK (day BETWEEN 1 AND 31),
    -- For the reminder: whose day it is, and who is reminded.
    person_name text     NOT NULL,
    owner       text     NOT NULL,
    -- The person and its linked party (a consumer's), for the task's client and for erasure.
    client_ids  uuid[]   NOT NULL,
    -- The next day it falls on that has had no reminder yet.
    next_on     date     NOT NULL,
    PRIMARY KEY (person_id, kind, label, month, day)
);
CREATE INDEX occasions_due ON occasions (next_on);

-- Persons whose occasions are to be read again from parties (created, or their days or owner
-- changed), until it is done.
CREATE TABLE occasion_refresh (
    person_id uuid        PRIMARY KEY,
    asked_at  timestamptz NOT NULL DEFAULT now(),
    next_at   timestamptz NOT NULL DEFAULT now()
);

-- One reminder per occasion and day, whoever asks twice.
CREATE TABLE occasion_reminders (
    person_id uuid NOT NULL,
    kind      text NOT NULL,
    label     text NOT NULL,
    occurs_on date NOT NULL,
    task_id   uuid NOT NULL,
    PRIMARY KEY (person_id, kind, label, occurs_on)
);

-- Parties and persons erased here: a write about one of them that was checked with parties
-- before the erasure, and arrives after it, is refused rather than bring their data back.
CREATE TABLE erased_subjects (
    id        uuid        PRIMARY KEY,
    erased_at timestamptz NOT NULL DEFAULT now()
);

-- Request ids, callers and method names are identifiers, not words: compared byte by byte ("C")
-- rather than by the database's locale, every claim's key lookup and insert skips the locale's
-- collation routine.
ALTER TABLE crm_idempotency
    ALTER COLUMN caller TYPE text COLLATE "C",
    ALTER COLUMN method TYPE text COLLATE "C",
    ALTER COLUMN request_id TYPE text COLLATE "C";

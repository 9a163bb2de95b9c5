-- When a data-subject erasure anonymised the row (kept for the ids other records point at).
ALTER TABLE parties ADD COLUMN erased_at timestamptz;
ALTER TABLE persons ADD COLUMN erased_at timestamptz;

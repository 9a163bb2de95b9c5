-- Operations are as immutable as their entries: a correction is a reversal, never an edit. (What
-- reverses an operation is found by `reverses`, so nothing ever needs to update one.)
CREATE FUNCTION operations_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'operations are immutable: post a reversal instead';
END
$$;
CREATE TRIGGER operations_no_update_or_delete BEFORE UPDATE OR DELETE ON operations
    FOR EACH ROW EXECUTE FUNCTION operations_are_immutable();
CREATE TRIGGER operations_no_truncate BEFORE TRUNCATE ON operations
    FOR EACH STATEMENT EXECUTE FUNCTION operations_are_immutable();

-- Reads that scanned without them: a card's replacements, an account's entries in a time window
-- (qualifying points), and a person's accounts (erasure, B2B balances).
CREATE INDEX cards_parent ON cards (parent_id) WHERE parent_id IS NOT NULL;
CREATE INDEX ledger_entries_account_time ON ledger_entries (account_id, created_at);
CREATE INDEX accounts_person ON accounts (person_id) WHERE person_id IS NOT NULL;

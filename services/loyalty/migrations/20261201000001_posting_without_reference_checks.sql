-- The posting engine (src/posting) is the only writer of entries, lots and lot takes, and writes
-- each operation with its entries and lot in one statement. A foreign key check is a lookup and a
-- row lock per row written — eight per accrual, one of them on the program's system account that
-- every concurrent posting shares — and measured as half the cost of posting. The references are
-- checked instead by `crm-loyalty verify` (and after every test): every entry, lot and lot take
-- names an operation and an account that exist.
ALTER TABLE ledger_entries
    DROP CONSTRAINT ledger_entries_operation_id_fkey,
    DROP CONSTRAINT ledger_entries_account_id_fkey;
ALTER TABLE point_lots
    DROP CONSTRAINT point_lots_account_id_fkey,
    DROP CONSTRAINT point_lots_operation_id_fkey;
ALTER TABLE lot_takes DROP CONSTRAINT lot_takes_operation_id_fkey;

-- Served tier evaluation over time, which now reads qualifying_days; entries are listed by
-- (account_id, id), which ledger_entries_account keeps.
DROP INDEX ledger_entries_account_time;

-- Operation ids are identifiers: compared byte by byte ("C") rather than by the database's locale,
-- the unique index serves prefix searches (`LIKE 'invoice:%'`) itself, so the second index on the
-- same column goes.
ALTER TABLE operations ALTER COLUMN client_id TYPE text COLLATE "C";
DROP INDEX operations_client_id_pattern;

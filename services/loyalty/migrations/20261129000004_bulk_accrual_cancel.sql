-- A bulk accrual can be stopped: members credited so far keep their points (reverse their
-- operations to take them back); the rest are not credited.
ALTER TABLE bulk_accruals DROP CONSTRAINT bulk_accruals_status_check,
    ADD CONSTRAINT bulk_accruals_status_check CHECK (status IN ('running', 'completed', 'cancelled'));
CREATE INDEX bulk_accruals_program ON bulk_accruals (program_id, id DESC);

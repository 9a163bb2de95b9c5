-- Partial returns: an operation may be reversed in parts, never by more than its points (the
-- posting engine checks the sum under the original's lock; `crm-loyalty verify` checks it after).
ALTER TABLE operations DROP CONSTRAINT operations_reverses_key;
CREATE INDEX operations_reverses ON operations (reverses) WHERE reverses IS NOT NULL;

-- What credit notes returned of each invoice line so far, to reverse its points pro rata.
ALTER TABLE invoice_lines ADD COLUMN quantity numeric;
ALTER TABLE invoice_lines ADD COLUMN returned_amount numeric NOT NULL DEFAULT 0;
ALTER TABLE invoice_lines ADD COLUMN returned_quantity numeric NOT NULL DEFAULT 0;

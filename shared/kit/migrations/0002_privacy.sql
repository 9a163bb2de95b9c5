-- Erasure receipts this service gave, so a data-subject request sent again (a retry) gets the same
-- answer without the erasure running twice. Receipts name what was erased, never the data.
CREATE TABLE crm_privacy_receipts (
    request_id uuid        PRIMARY KEY,
    receipt    bytea       NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now()
);

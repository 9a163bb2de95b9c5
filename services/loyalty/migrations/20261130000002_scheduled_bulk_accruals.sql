-- Scheduled and recurring bulk accruals: a job may start later, and repeat every N days (each run
-- a job of its own, in its series, with its members chosen when it starts).
ALTER TABLE bulk_accruals DROP CONSTRAINT bulk_accruals_status_check,
    ADD CONSTRAINT bulk_accruals_status_check
        CHECK (status IN ('scheduled', 'running', 'completed', 'cancelled'));
ALTER TABLE bulk_accruals
    ADD COLUMN start_at          timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN repeat_every_days integer     NOT NULL DEFAULT 0 CHECK (repeat_every_days >= 0),
    ADD COLUMN runs              integer     NOT NULL DEFAULT 0 CHECK (runs >= 0),
    ADD COLUMN run               integer     NOT NULL DEFAULT 1 CHECK (run >= 1),
    -- The first run's job id; every run of a series shares it.
    ADD COLUMN series            text,
    -- Whom each run credits, resolved when it starts: {"memberships": [...]}, {"base": "..."}
    -- or {"all": true}.
    ADD COLUMN selection         jsonb;
UPDATE bulk_accruals SET series = client_id, start_at = created_at;
ALTER TABLE bulk_accruals ALTER COLUMN series SET NOT NULL;
CREATE INDEX bulk_accruals_due ON bulk_accruals (start_at) WHERE status = 'scheduled';
CREATE INDEX bulk_accruals_series ON bulk_accruals (series) WHERE status = 'scheduled';

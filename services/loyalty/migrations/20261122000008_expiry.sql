-- Point expiry. Each credit is a lot with the expiry its point type gives it; debits consume lots
-- oldest-expiring first (never-expiring last); the sweep expires what is left of a lot when its
-- time comes, as an operation against the program's expiry account.
ALTER TABLE accounts DROP CONSTRAINT accounts_kind_check;
ALTER TABLE accounts ADD CONSTRAINT accounts_kind_check
    CHECK (kind IN ('member', 'issuance', 'redemption', 'expiry'));
INSERT INTO accounts (id, program_id, point_type, kind)
SELECT gen_random_uuid(), program_id, code, 'expiry' FROM point_types
ON CONFLICT DO NOTHING;

CREATE TABLE point_lots (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id   uuid        NOT NULL REFERENCES accounts (id),
    operation_id uuid        NOT NULL REFERENCES operations (id),
    amount       bigint      NOT NULL CHECK (amount > 0),
    remaining    bigint      NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
    -- NULL: never expires.
    expires_at   timestamptz
);
CREATE INDEX point_lots_open ON point_lots (account_id, expires_at NULLS LAST, id) WHERE remaining > 0;
CREATE INDEX point_lots_due ON point_lots (expires_at) WHERE remaining > 0 AND expires_at IS NOT NULL;

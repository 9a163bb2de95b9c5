-- Programs, memberships and the points ledger.
--
-- Every operation is a transfer of two (or more) immutable ledger entries summing to zero: the
-- member's account against the program's issuance account (accruals) or redemption account
-- (settlements). A member account's balance and held points live in its row, updated in the
-- transaction that posts its entries, so a balance is one indexed read. The system accounts take
-- part in every operation of a program; their balance is never kept in a row (that row would
-- serialise the whole program) and is the sum of their entries.

CREATE TABLE programs (
    id            uuid        PRIMARY KEY,
    display_name  text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('b2c', 'b2b')),
    currency_code text        NOT NULL CHECK (currency_code ~ '^[A-Z]{3}$'),
    status        text        NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'closed')),
    valid_from    date,
    valid_to      date,
    reward_ids    text[]      NOT NULL DEFAULT '{}',
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    updated_by    text        NOT NULL,
    version       bigint      NOT NULL DEFAULT 1,
    CHECK (valid_to IS NULL OR valid_from IS NULL OR valid_to >= valid_from)
);
CREATE INDEX programs_status_id ON programs (status, id);

CREATE TABLE point_types (
    program_id     uuid    NOT NULL REFERENCES programs (id),
    code           text    NOT NULL,
    display_name   text    NOT NULL,
    qualifying     boolean NOT NULL DEFAULT false,
    expiry_policy  text    NOT NULL CHECK (expiry_policy IN ('never', 'months_after_earning', 'end_of_program')),
    expiry_months  integer NOT NULL DEFAULT 0 CHECK (expiry_months >= 0),
    allow_negative boolean NOT NULL DEFAULT false,
    reversal_floor bigint  NOT NULL DEFAULT 0 CHECK (reversal_floor <= 0),
    position       integer NOT NULL,
    PRIMARY KEY (program_id, code)
);

CREATE TABLE operation_types (
    program_id         uuid NOT NULL REFERENCES programs (id),
    code               text NOT NULL,
    display_name       text NOT NULL,
    direction          text NOT NULL CHECK (direction IN ('accrue', 'settle')),
    default_point_type text NOT NULL,
    position           integer NOT NULL,
    PRIMARY KEY (program_id, code),
    FOREIGN KEY (program_id, default_point_type) REFERENCES point_types (program_id, code)
);

CREATE TABLE memberships (
    id                   uuid        PRIMARY KEY,
    program_id           uuid        NOT NULL REFERENCES programs (id),
    party_id             uuid        NOT NULL,
    status               text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'left')),
    pool_to_organization boolean     NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    created_by           text        NOT NULL,
    updated_by           text        NOT NULL,
    version              bigint      NOT NULL DEFAULT 1,
    UNIQUE (program_id, party_id)
);
CREATE INDEX memberships_party ON memberships (party_id, id);

CREATE TABLE accounts (
    id            uuid        PRIMARY KEY,
    program_id    uuid        NOT NULL,
    point_type    text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('member', 'issuance', 'redemption')),
    membership_id uuid        REFERENCES memberships (id),
    -- B2B: the person (parties service) whose account this is; NULL for the membership's own.
    person_id     uuid,
    -- Member accounts only; system accounts derive theirs from their entries.
    balance       bigint      NOT NULL DEFAULT 0,
    held          bigint      NOT NULL DEFAULT 0 CHECK (held >= 0),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (program_id, point_type) REFERENCES point_types (program_id, code),
    CHECK ((kind = 'member') = (membership_id IS NOT NULL))
);
CREATE UNIQUE INDEX accounts_member
    ON accounts (membership_id, coalesce(person_id, '00000000-0000-0000-0000-000000000000'::uuid), point_type)
    WHERE kind = 'member';
CREATE UNIQUE INDEX accounts_system ON accounts (program_id, point_type, kind) WHERE kind <> 'member';

CREATE TABLE operations (
    id             uuid        PRIMARY KEY,
    -- The client's idempotency id: an operation is posted once, whatever happens to replays.
    client_id      text        NOT NULL UNIQUE,
    account_id     uuid        NOT NULL REFERENCES accounts (id),
    operation_type text        NOT NULL,
    direction      text        NOT NULL CHECK (direction IN ('accrue', 'settle')),
    points         bigint      NOT NULL CHECK (points > 0),
    balance_after  bigint      NOT NULL,
    reference      text        NOT NULL DEFAULT '',
    -- A reversal names what it reverses; UNIQUE: nothing is reversed twice.
    reverses       uuid        UNIQUE REFERENCES operations (id),
    created_at     timestamptz NOT NULL DEFAULT now(),
    created_by     text        NOT NULL
);
CREATE INDEX operations_account ON operations (account_id, created_at);

CREATE TABLE ledger_entries (
    id            bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    operation_id  uuid        NOT NULL REFERENCES operations (id),
    account_id    uuid        NOT NULL REFERENCES accounts (id),
    -- Positive: credit; negative: debit. Each operation's entries sum to zero.
    amount        bigint      NOT NULL CHECK (amount <> 0),
    -- Member accounts only.
    balance_after bigint,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ledger_entries_account ON ledger_entries (account_id, id DESC);

-- The ledger is append-only: corrections are new entries (reversals), never edits.
CREATE FUNCTION ledger_entries_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ledger entries are immutable: post a reversal instead';
END
$$;
CREATE TRIGGER ledger_entries_no_update_or_delete BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_are_immutable();
CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_are_immutable();

CREATE TABLE holds (
    id                   uuid        PRIMARY KEY,
    client_id            text        NOT NULL UNIQUE,
    account_id           uuid        NOT NULL REFERENCES accounts (id),
    points               bigint      NOT NULL CHECK (points > 0),
    captured_points      bigint      NOT NULL DEFAULT 0 CHECK (captured_points >= 0 AND captured_points <= points),
    status               text        NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'captured', 'voided', 'expired')),
    expires_at           timestamptz NOT NULL,
    reference            text        NOT NULL DEFAULT '',
    capture_operation_id uuid        REFERENCES operations (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX holds_pending_expiry ON holds (expires_at) WHERE status = 'pending';

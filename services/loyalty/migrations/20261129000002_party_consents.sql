-- Loyalty's own view of each party's loyalty_program consent: the newest record it has heard of,
-- from the consent service's events or from the service's answer at enrolment. Enrolment and the
-- consent consumer both write the party's row before anything else, so they take turns: a
-- withdrawal either reaches the row first (and the enrolment is refused) or waits for the new
-- membership to commit (and then suspends it).
CREATE TABLE party_consents (
    party_id   uuid        PRIMARY KEY,
    -- The consent record (ids are time-ordered UUIDv7) ...
    record_id  uuid        NOT NULL,
    -- ... and within it: 0 its grant, 1 its expiry or withdrawal.
    stage      smallint    NOT NULL CHECK (stage IN (0, 1)),
    granted    boolean     NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now()
);

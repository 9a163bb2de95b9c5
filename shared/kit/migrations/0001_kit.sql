-- Tables the kit keeps in every service's database. Kit migrations use small version numbers;
-- services number theirs by date (YYYYMMDDNNNNNN), so the two sets never collide.

-- Replies to mutating calls that carried a request_id, so a replay gets the first answer.
CREATE TABLE crm_idempotency (
    request_id   text        PRIMARY KEY,
    method       text        NOT NULL,
    request_hash bytea       NOT NULL,
    response     bytea,
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX crm_idempotency_created_at ON crm_idempotency (created_at);

-- Events written in the same transaction as the state change they describe; the relay publishes
-- them in id order and marks them published.
CREATE TABLE crm_outbox (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    event_id     uuid        NOT NULL UNIQUE,
    topic        text        NOT NULL,
    key          text        NOT NULL,
    event_type   text        NOT NULL,
    payload      bytea       NOT NULL,
    trace_headers jsonb      NOT NULL DEFAULT '{}',
    created_at   timestamptz NOT NULL DEFAULT now(),
    published_at timestamptz
);
CREATE INDEX crm_outbox_unpublished ON crm_outbox (id) WHERE published_at IS NULL;

-- Events a consumer has applied, written in the transaction of their effect: a redelivery finds
-- its row and is skipped.
CREATE TABLE crm_inbox (
    consumer     text        NOT NULL,
    event_id     text        NOT NULL,
    topic        text        NOT NULL,
    processed_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, event_id)
);

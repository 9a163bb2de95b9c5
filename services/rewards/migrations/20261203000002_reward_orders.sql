-- Reward orders: a saga over the loyalty ledger's two-phase hold, each step recorded here so that
-- a crash anywhere resumes (see orders.rs). Writes lock rows in this order: the member (an
-- advisory lock, for per-member limits), reward_orders, rewards, stock_items, voucher_codes.

CREATE TABLE reward_orders (
    id              uuid        PRIMARY KEY,
    membership_id   uuid        NOT NULL,
    -- The member's party; replaced by a pseudonym when the party is erased.
    party_id        uuid        NOT NULL,
    program_id      uuid        NOT NULL,
    point_type      text        NOT NULL,
    kind            text        NOT NULL CHECK (kind IN ('material', 'voucher')),
    status          text        NOT NULL CHECK (status IN ('placing', 'confirmed', 'shipping',
                        'shipped', 'delivered', 'cancelling', 'cancelled', 'partially_returned',
                        'returned', 'failed')),
    points          bigint      NOT NULL CHECK (points > 0),
    captured_points bigint      NOT NULL DEFAULT 0,
    returned_points bigint      NOT NULL DEFAULT 0 CHECK (returned_points <= captured_points),
    -- The loyalty hold's client id, and how long it was asked for (a repeated HoldPoints must ask
    -- the same).
    hold_id         text        NOT NULL UNIQUE,
    hold_seconds    bigint      NOT NULL,
    hold_expires_at timestamptz,
    -- Delivery: personal data, anonymised by an erasure.
    recipient_name  text,
    address         jsonb,
    email           text,
    phone           text,
    carrier         text,
    tracking_number text,
    cancel_reason   text,
    failure_reason  text,
    failure_message text,
    -- A hold may exist that nobody wants: the call that asked for it got no answer. The sweep
    -- voids it when loyalty answers.
    void_due        boolean     NOT NULL DEFAULT false,
    -- The placing call's request id: forgotten if the order fails, so a retry places it anew.
    request_id      text        NOT NULL,
    created_by      text        NOT NULL,
    updated_by      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    confirmed_at    timestamptz,
    shipped_at      timestamptz,
    delivered_at    timestamptz,
    cancelled_at    timestamptz
);
CREATE INDEX reward_orders_by_member ON reward_orders (membership_id, id);
-- An order is placed once per request id, even after the request id's stored answer is purged.
CREATE UNIQUE INDEX reward_orders_by_request ON reward_orders (created_by, request_id)
    WHERE status <> 'failed';
CREATE INDEX reward_orders_by_party ON reward_orders (party_id);
-- What the sweep tends: steps in flight, holds to void, confirmed orders whose hold expires.
CREATE INDEX reward_orders_in_flight ON reward_orders (status, updated_at)
    WHERE status IN ('placing', 'confirmed', 'shipping', 'cancelling');
CREATE INDEX reward_orders_hold_expiry ON reward_orders (hold_expires_at)
    WHERE status = 'confirmed';
CREATE INDEX reward_orders_void_due ON reward_orders (id) WHERE void_due;

CREATE TABLE reward_order_items (
    order_id            uuid    NOT NULL REFERENCES reward_orders,
    line                integer NOT NULL,
    reward_id           uuid    NOT NULL REFERENCES rewards,
    display_name        text    NOT NULL,
    quantity            integer NOT NULL CHECK (quantity > 0),
    unit_points         bigint  NOT NULL CHECK (unit_points > 0),
    co_payment_amount   numeric,
    co_payment_currency text,
    returned_quantity   integer NOT NULL DEFAULT 0 CHECK (returned_quantity BETWEEN 0 AND quantity),
    PRIMARY KEY (order_id, line)
);
CREATE INDEX reward_order_items_by_reward ON reward_order_items (reward_id);

-- A return is recorded (goods back on the shelf) before loyalty gives the points back, and marked
-- when it has: the sweep finishes any return a crash interrupted, each exactly once.
CREATE TABLE reward_order_returns (
    id              uuid        PRIMARY KEY,
    order_id        uuid        NOT NULL REFERENCES reward_orders,
    -- Asked for; once given back, what loyalty gave (0 when it refused).
    points          bigint      NOT NULL CHECK (points >= 0),
    reason          text        NOT NULL DEFAULT '',
    points_returned boolean     NOT NULL DEFAULT false,
    -- Loyalty's words when it refused the points for good.
    refused         text,
    created_by      text        NOT NULL,
    created_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX reward_order_returns_by_order ON reward_order_returns (order_id, id);
CREATE INDEX reward_order_returns_pending ON reward_order_returns (id) WHERE NOT points_returned;

CREATE TABLE reward_order_returned_items (
    return_id uuid    NOT NULL REFERENCES reward_order_returns,
    line      integer NOT NULL,
    quantity  integer NOT NULL CHECK (quantity > 0),
    PRIMARY KEY (return_id, line)
);

-- A code is taken by an order when it is placed (order_id) and issued when the order's points are
-- taken (issued_at, and valid_until cut to the reward's validity); an order that fails or is
-- cancelled before that gives it back. Generated codes are written here when issued.
ALTER TABLE voucher_codes DROP CONSTRAINT voucher_codes_check;
ALTER TABLE voucher_codes ADD CHECK (issued_at IS NULL OR order_id IS NOT NULL);
ALTER TABLE voucher_codes ADD COLUMN line integer;
CREATE INDEX voucher_codes_by_order ON voucher_codes (order_id) WHERE order_id IS NOT NULL;

-- The reward catalogue, voucher codes, warehouses and stock.
-- Writes lock rows in this order: rewards, stock_items (by warehouse id), voucher_codes.

CREATE TABLE rewards (
    id                  uuid        PRIMARY KEY,
    program_id          uuid        NOT NULL,
    point_type          text        NOT NULL,
    kind                text        NOT NULL CHECK (kind IN ('material', 'voucher')),
    status              text        NOT NULL CHECK (status IN ('draft', 'active', 'archived')),
    display_name        text        NOT NULL,
    description         text        NOT NULL DEFAULT '',
    category            text        NOT NULL DEFAULT '',
    image_uri           text        NOT NULL DEFAULT '',
    price_points        bigint      NOT NULL CHECK (price_points > 0),
    co_payment_amount   numeric,
    co_payment_currency text,
    available_from      timestamptz,
    available_until     timestamptz,
    per_member_limit    integer     NOT NULL DEFAULT 0 CHECK (per_member_limit >= 0),
    total_limit         integer     NOT NULL DEFAULT 0 CHECK (total_limit >= 0),
    tier_codes          text[]      NOT NULL DEFAULT '{}',
    base_ids            uuid[]      NOT NULL DEFAULT '{}',
    voucher_source      text        CHECK (voucher_source IN ('generated', 'imported')),
    voucher_valid_days  integer     NOT NULL DEFAULT 0 CHECK (voucher_valid_days >= 0),
    low_stock_threshold integer     NOT NULL DEFAULT 0 CHECK (low_stock_threshold >= 0),
    -- Units in orders not cancelled or returned, kept with every order's change.
    ordered_units       bigint      NOT NULL DEFAULT 0 CHECK (ordered_units >= 0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    created_by          text        NOT NULL,
    updated_by          text        NOT NULL,
    version             bigint      NOT NULL DEFAULT 1,
    CHECK ((kind = 'voucher') = (voucher_source IS NOT NULL)),
    CHECK ((co_payment_amount IS NULL) = (co_payment_currency IS NULL)),
    CHECK (available_until IS NULL OR available_from IS NULL OR available_until > available_from)
);
CREATE INDEX rewards_by_program ON rewards (program_id, id);

CREATE TABLE voucher_codes (
    reward_id   uuid        NOT NULL REFERENCES rewards,
    code        text        NOT NULL,
    -- The partner's own last valid day, when it has one.
    valid_until date,
    imported_at timestamptz NOT NULL DEFAULT now(),
    -- Set once, when the code is issued to an order.
    order_id    uuid,
    issued_at   timestamptz,
    PRIMARY KEY (reward_id, code),
    CHECK ((order_id IS NULL) = (issued_at IS NULL))
);
CREATE INDEX voucher_codes_not_issued ON voucher_codes (reward_id, imported_at)
    WHERE order_id IS NULL;

CREATE TABLE warehouses (
    id           uuid        PRIMARY KEY,
    code         text        NOT NULL UNIQUE,
    display_name text        NOT NULL,
    address      jsonb,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    updated_by   text        NOT NULL,
    version      bigint      NOT NULL DEFAULT 1
);

-- The database refuses stock below zero or reservations beyond what is on hand, whatever the code
-- above it does.
CREATE TABLE stock_items (
    reward_id    uuid        NOT NULL REFERENCES rewards,
    warehouse_id uuid        NOT NULL REFERENCES warehouses,
    -- At most a trillion units, so that sums over warehouses never overflow.
    on_hand      bigint      NOT NULL DEFAULT 0 CHECK (on_hand BETWEEN 0 AND 1000000000000),
    reserved     bigint      NOT NULL DEFAULT 0 CHECK (reserved >= 0),
    -- Available stock is below the reward's threshold (so the event is sent once per crossing).
    low          boolean     NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (reward_id, warehouse_id),
    CHECK (reserved <= on_hand)
);

CREATE TABLE stock_movements (
    id             uuid        PRIMARY KEY,
    reward_id      uuid        NOT NULL,
    warehouse_id   uuid        NOT NULL,
    kind           text        NOT NULL CHECK (kind IN ('receipt', 'reservation', 'release', 'issue',
                                                        'return', 'adjustment', 'transfer')),
    quantity       bigint      NOT NULL CHECK (quantity <> 0),
    reason         text        NOT NULL DEFAULT '',
    reference      text        NOT NULL DEFAULT '',
    transfer_id    uuid,
    order_id       uuid,
    on_hand_after  bigint      NOT NULL,
    reserved_after bigint      NOT NULL,
    recorded_by    text        NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (reward_id, warehouse_id) REFERENCES stock_items
);
CREATE INDEX stock_movements_by_reward ON stock_movements (reward_id, id);
CREATE INDEX stock_movements_by_order ON stock_movements (order_id) WHERE order_id IS NOT NULL;

-- Offers to a client or prospect, and their versions (written once, never changed).

CREATE TABLE offers (
    id               uuid        PRIMARY KEY,
    party_id         uuid        NOT NULL,
    case_id          uuid        REFERENCES cases,
    title            text        NOT NULL DEFAULT '',
    currency_code    text        NOT NULL,
    locale           text        NOT NULL,
    valid_until      date        NOT NULL,
    price_list       text        NOT NULL DEFAULT '',
    membership_id    uuid,
    notes            text        NOT NULL DEFAULT '',
    status           text        NOT NULL
                     CHECK (status IN ('draft', 'sent', 'accepted', 'rejected', 'expired')),
    accepted_version integer,
    -- The sales order request an acceptance made: one per offer.
    order_request_id uuid        UNIQUE,
    reject_reason    text        NOT NULL DEFAULT '',
    -- The client's own order number, given when they accepted.
    client_reference text        NOT NULL DEFAULT '',
    sent_at          timestamptz,
    decided_at       timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    created_by       text        NOT NULL,
    updated_by       text        NOT NULL,
    version          bigint      NOT NULL DEFAULT 1,
    CHECK ((status = 'accepted') = (order_request_id IS NOT NULL))
);
CREATE INDEX offers_listed ON offers (id DESC);
CREATE INDEX offers_by_party ON offers (party_id, id DESC);
CREATE INDEX offers_by_case ON offers (case_id, id DESC) WHERE case_id IS NOT NULL;
-- The expiry sweep's work.
CREATE INDEX offers_to_expire ON offers (valid_until) WHERE status = 'sent';

CREATE TABLE offer_versions (
    offer_id       uuid        NOT NULL REFERENCES offers ON DELETE CASCADE,
    number         integer     NOT NULL CHECK (number > 0),
    -- Priced lines: [{"product_id", "description", "quantity", "unit", "unit_price",
    -- "discount_percent", "tax_code", "tax_percent", "category", "member_discount_percent",
    -- "applied_discount_percent", "net"}], decimals as strings.
    lines          jsonb       NOT NULL,
    coupon_code    text        NOT NULL DEFAULT '',
    coupon_percent numeric     NOT NULL DEFAULT 0,
    -- [{"tax_code", "tax_percent", "net", "tax", "gross"}] in the order the rates first appear.
    tax_totals     jsonb       NOT NULL,
    net            numeric     NOT NULL,
    tax            numeric     NOT NULL,
    gross          numeric     NOT NULL,
    created_at     timestamptz NOT NULL,
    created_by     text        NOT NULL,
    PRIMARY KEY (offer_id, number)
);

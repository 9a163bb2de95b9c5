-- Coupon definitions, their codes and every redemption. A code's `uses` only grows by a
-- conditional update, so it never passes the definition's limit.
CREATE TABLE coupon_definitions (
    id            uuid        PRIMARY KEY,
    program_id    uuid        NOT NULL REFERENCES programs (id),
    display_name  text        NOT NULL,
    kind          text        NOT NULL CHECK (kind IN ('percentage', 'fixed_amount', 'product')),
    percentage    numeric,
    amount        numeric,
    product_id    text        NOT NULL DEFAULT '',
    uses_per_code integer     NOT NULL CHECK (uses_per_code > 0),
    per_member    boolean     NOT NULL,
    valid_from    timestamptz,
    valid_to      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL,
    updated_by    text        NOT NULL
);

CREATE TABLE coupons (
    code          text    PRIMARY KEY,
    definition_id uuid    NOT NULL REFERENCES coupon_definitions (id),
    membership_id uuid    REFERENCES memberships (id),
    uses          integer NOT NULL DEFAULT 0 CHECK (uses >= 0)
);
CREATE INDEX coupons_definition ON coupons (definition_id);

CREATE TABLE coupon_redemptions (
    id            uuid        PRIMARY KEY,
    client_id     text        NOT NULL UNIQUE,
    code          text        NOT NULL REFERENCES coupons (code),
    membership_id uuid        NOT NULL REFERENCES memberships (id),
    reference     text        NOT NULL DEFAULT '',
    created_at    timestamptz NOT NULL DEFAULT now(),
    created_by    text        NOT NULL
);

-- Discount levels per price list and category, and the invoiced turnover automatic levels use.
CREATE TABLE discounts (
    id                 uuid        PRIMARY KEY,
    party_id           uuid,
    price_list         text        NOT NULL,
    category           text        NOT NULL DEFAULT '',
    percentage         numeric     NOT NULL CHECK (percentage > 0 AND percentage <= 100),
    turnover_threshold numeric     CHECK (turnover_threshold >= 0),
    currency_code      text        NOT NULL DEFAULT '',
    valid_from         date,
    valid_to           date,
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now(),
    created_by         text        NOT NULL,
    updated_by         text        NOT NULL,
    -- A party's own discount, or an automatic level with a threshold: one or the other.
    CHECK ((party_id IS NULL) = (turnover_threshold IS NOT NULL))
);
CREATE INDEX discounts_party ON discounts (party_id, price_list) WHERE party_id IS NOT NULL;
CREATE INDEX discounts_levels ON discounts (price_list) WHERE party_id IS NULL;

-- Invoice lines as the invoice consumer saw them; turnover is the sum of lines not credited.
CREATE TABLE invoice_lines (
    invoice_id    text    NOT NULL,
    line_id       text    NOT NULL,
    party_id      uuid    NOT NULL,
    currency_code text    NOT NULL,
    net_amount    numeric NOT NULL,
    credited      boolean NOT NULL DEFAULT false,
    PRIMARY KEY (invoice_id, line_id)
);
CREATE INDEX invoice_lines_party ON invoice_lines (party_id) WHERE NOT credited;

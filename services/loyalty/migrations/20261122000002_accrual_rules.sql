-- How invoiced sales earn points in a program: {"operation_type", "points_per_unit",
-- "category_rates": {category: rate}, "minimum_amount", "cap_per_invoice"}; decimals as strings.
ALTER TABLE programs ADD COLUMN accrual_rules jsonb;

-- Invoice postings are found by their client id, "invoice:<invoice id>:<line id>:<program id>".
CREATE INDEX operations_client_id_pattern ON operations (client_id text_pattern_ops);

-- Coupon definitions change by UpdateCouponDefinition, guarded by their etag (the version).
ALTER TABLE coupon_definitions ADD COLUMN version bigint NOT NULL DEFAULT 1;
CREATE INDEX coupon_definitions_program ON coupon_definitions (program_id, id DESC);

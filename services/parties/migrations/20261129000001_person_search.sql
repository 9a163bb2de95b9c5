-- SearchPersons: by name (B2B persons keep their names here; a natural person's are on its party,
-- searched through parties_display_name_trgm), by private and by business contact points.
CREATE INDEX persons_name_trgm ON persons USING gin ((given_name || ' ' || family_name) gin_trgm_ops);
CREATE INDEX persons_private_contact_points ON persons USING gin (private_contact_points jsonb_path_ops);
CREATE INDEX employments_business_contact_points ON employments USING gin (business_contact_points jsonb_path_ops);

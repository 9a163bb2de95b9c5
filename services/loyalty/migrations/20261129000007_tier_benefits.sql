-- What a tier gives its members besides its name: return conditions and further named benefits,
-- read by tills and the service desk through GetMemberBenefits.
ALTER TABLE tiers
    ADD COLUMN return_window_days integer NOT NULL DEFAULT 0 CHECK (return_window_days BETWEEN 0 AND 3650),
    ADD COLUMN free_return_shipping boolean NOT NULL DEFAULT false,
    ADD COLUMN other_benefits jsonb NOT NULL DEFAULT '[]';

-- Tiers (card categories) of a program, and the tier each membership holds.
CREATE TABLE tiers (
    program_id    uuid    NOT NULL REFERENCES programs (id),
    code          text    NOT NULL,
    display_name  text    NOT NULL,
    threshold     bigint  NOT NULL CHECK (threshold >= 0),
    window_months integer NOT NULL DEFAULT 0 CHECK (window_months BETWEEN 0 AND 120),
    PRIMARY KEY (program_id, code)
);

ALTER TABLE memberships
    ADD COLUMN tier text,
    ADD COLUMN assigned_tier text;

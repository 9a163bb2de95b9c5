-- Memberships suspended because the party withdrew its loyalty_program consent; a new grant
-- reactivates exactly these (a suspension by hand stays).
ALTER TABLE memberships ADD COLUMN suspended_for_consent boolean NOT NULL DEFAULT false;

-- A granted consent whose expiry passed is announced once (ConsentChanged EXPIRED); a new record
-- for the subject and purpose makes its state current again.
ALTER TABLE consent_state ADD COLUMN expiry_announced boolean NOT NULL DEFAULT false;
CREATE INDEX consent_records_expiry ON consent_records (expires_at)
    WHERE expires_at IS NOT NULL AND status = 'granted';

-- Purposes carry a version for their etag and the time they last changed (UpdatePurpose).
ALTER TABLE purposes
    ADD COLUMN version    bigint      NOT NULL DEFAULT 1,
    ADD COLUMN updated_at timestamptz NOT NULL DEFAULT now();

-- ListAuditLog and ListSubjectRequests filter by action, type and time.
CREATE INDEX privacy_audit_log_action ON privacy_audit_log (action, id DESC);

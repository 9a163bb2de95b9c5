-- Purposes, their text versions, consent records (append-only history), the current state per
-- subject and purpose (one indexed read for checks), and the privacy audit log (append-only,
-- enforced here).

CREATE TABLE purposes (
    code                      text        PRIMARY KEY,
    description               text        NOT NULL,
    legal_basis               text        NOT NULL CHECK (legal_basis IN ('consent', 'contract', 'legitimate_interest', 'legal_obligation')),
    text_version              integer     NOT NULL DEFAULT 1,
    minimum_consented_version integer     NOT NULL DEFAULT 1,
    created_at                timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE purpose_texts (
    purpose      text        NOT NULL REFERENCES purposes (code),
    version      integer     NOT NULL,
    text         text        NOT NULL,
    published_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (purpose, version)
);

CREATE TABLE consent_records (
    id             uuid        PRIMARY KEY,
    subject_kind   text        NOT NULL CHECK (subject_kind IN ('party', 'person')),
    subject_id     uuid        NOT NULL,
    purpose        text        NOT NULL REFERENCES purposes (code),
    status         text        NOT NULL CHECK (status IN ('granted', 'withdrawn')),
    channel        text        NOT NULL,
    source_system  text        NOT NULL DEFAULT '',
    text_version   integer,
    reference      text        NOT NULL DEFAULT '',
    expires_at     timestamptz,
    recorded_by    text        NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX consent_records_subject ON consent_records (subject_id, id DESC);

-- The latest record per subject and purpose.
CREATE TABLE consent_state (
    subject_id uuid NOT NULL,
    purpose    text NOT NULL REFERENCES purposes (code),
    record_id  uuid NOT NULL REFERENCES consent_records (id),
    PRIMARY KEY (subject_id, purpose)
);

CREATE TABLE privacy_audit_log (
    id           bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at           timestamptz NOT NULL DEFAULT now(),
    actor        text        NOT NULL,
    action       text        NOT NULL,
    subject_kind text,
    subject_id   uuid,
    purpose      text,
    details      jsonb       NOT NULL DEFAULT '{}'
);
CREATE INDEX privacy_audit_log_subject ON privacy_audit_log (subject_id, id DESC);

CREATE FUNCTION append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is append-only', TG_TABLE_NAME;
END
$$;
CREATE TRIGGER privacy_audit_log_append_only BEFORE UPDATE OR DELETE ON privacy_audit_log
    FOR EACH ROW EXECUTE FUNCTION append_only();
CREATE TRIGGER privacy_audit_log_no_truncate BEFORE TRUNCATE ON privacy_audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION append_only();
CREATE TRIGGER consent_records_append_only BEFORE UPDATE OR DELETE ON consent_records
    FOR EACH ROW EXECUTE FUNCTION append_only();

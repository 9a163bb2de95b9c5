-- Imported e-mails: how each is recognised again and threaded, and the attachment content kept.

ALTER TABLE interactions
    -- The normalised Message-ID, shown to callers (blanked by an erasure: it may hold a name).
    ADD COLUMN message_id text,
    -- The conversation: the id of its first imported message.
    ADD COLUMN thread_id  uuid;
CREATE INDEX interactions_thread ON interactions (thread_id, occurred_at DESC, id DESC)
    WHERE thread_id IS NOT NULL;

-- Keys are SHA-256 hashes of normalised ids and subjects: they outlive an erasure without holding
-- what it erased, so an erased message is recognised and not imported again.
CREATE TABLE emails (
    interaction_id uuid    PRIMARY KEY REFERENCES interactions ON DELETE CASCADE,
    message_key    bytea   NOT NULL UNIQUE,
    -- In-Reply-To.
    reply_keys     bytea[] NOT NULL,
    -- References, oldest first.
    reference_keys bytea[] NOT NULL,
    -- The subject without reply and forward prefixes.
    subject_key    bytea   NOT NULL,
    -- Its date, subject and text: a message that reuses another's Message-ID (a broken or
    -- hostile mailer) is told apart by it.
    fingerprint    bytea   NOT NULL
);
CREATE INDEX emails_replies ON emails USING gin (reply_keys);

CREATE TABLE attachment_contents (
    interaction_id uuid    NOT NULL REFERENCES interactions ON DELETE CASCADE,
    position       integer NOT NULL,
    content        bytea   NOT NULL,
    PRIMARY KEY (interaction_id, position)
);

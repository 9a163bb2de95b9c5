-- One timeline per party, person and case, and full-text search.

-- Each row puts one item in one owner's timeline, in the order it is read: newest first. Owners
-- are parties, persons and cases (and, until loyalty says whose it is, a membership). Items are
-- interactions, notes and tasks (their content is read from their tables) and facts other
-- services published, whose content is here: ids, figures and statuses, no client's words.
CREATE TABLE timeline (
    owner_id    uuid        NOT NULL,
    item_id     uuid        NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('interaction', 'note', 'task', 'points',
                    'tier', 'membership', 'consent', 'reward_order', 'offer', 'case', 'ticket')),
    occurred_at timestamptz NOT NULL,
    -- Interactions: their channel.
    channel     text,
    -- Facts: the service, the event type, what it is about there, and what it says.
    source      text,
    event_type  text,
    reference   text,
    summary     text,
    attributes  jsonb,
    PRIMARY KEY (owner_id, item_id)
);
CREATE INDEX timeline_page ON timeline (owner_id, occurred_at DESC, item_id DESC);
CREATE INDEX timeline_items ON timeline (item_id);
-- An interaction's clients, read each time it is placed in the timelines (and by erasures).
CREATE INDEX interaction_clients_by_interaction ON interaction_clients (interaction_id);

-- What has been recorded so far, placed in its owners' timelines.
INSERT INTO timeline (owner_id, item_id, kind, occurred_at, channel)
SELECT c.client_id, i.id, 'interaction', i.occurred_at, i.channel
  FROM interaction_clients c JOIN interactions i ON i.id = c.interaction_id;
INSERT INTO timeline (owner_id, item_id, kind, occurred_at)
SELECT DISTINCT o.owner, n.id, 'note', n.created_at
  FROM notes n, unnest(n.client_ids || n.case_id) o (owner) WHERE o.owner IS NOT NULL;
INSERT INTO timeline (owner_id, item_id, kind, occurred_at)
SELECT DISTINCT o.owner, t.id, 'task', t.created_at
  FROM tasks t, unnest(t.client_ids || t.case_id) o (owner) WHERE o.owner IS NOT NULL;

-- Whose loyalty memberships are (points and tier events name only the membership), and which
-- person a consumer party is (their facts belong to both).
CREATE TABLE memberships (
    membership_id uuid PRIMARY KEY,
    party_id      uuid NOT NULL
);
CREATE TABLE natural_persons (
    party_id  uuid PRIMARY KEY,
    person_id uuid NOT NULL UNIQUE
);

-- Search over subjects and bodies in any language: words as written (the `simple` dictionary:
-- no stemming is right for Polish and Russian alike), without accents or case.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH CONFIGURATION crm_search (COPY = simple);
ALTER TEXT SEARCH CONFIGURATION crm_search
    ALTER MAPPING FOR word, hword, hword_part, numword, numhword, hword_numpart WITH unaccent, simple;
-- Stored, so a search's recheck reads the vector instead of parsing a body again.
ALTER TABLE interactions ADD COLUMN search tsvector
    GENERATED ALWAYS AS (to_tsvector('crm_search', subject || ' ' || body)) STORED;
CREATE INDEX interactions_search ON interactions USING gin (search);

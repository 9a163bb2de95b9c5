-- The parties schema. Names, contacts and addresses of a natural person live once, on the party
-- row; the person row of a natural person reads them from there, so both views always agree.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE bases (
    id           uuid        PRIMARY KEY,
    display_name text        NOT NULL,
    description  text        NOT NULL DEFAULT '',
    archived     boolean     NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    created_by   text        NOT NULL,
    updated_by   text        NOT NULL,
    version      bigint      NOT NULL DEFAULT 1
);
CREATE UNIQUE INDEX bases_display_name_key ON bases (lower(display_name)) WHERE NOT archived;

CREATE TABLE parties (
    id                   uuid        PRIMARY KEY,
    kind                 text        NOT NULL CHECK (kind IN ('organization', 'person')),
    display_name         text        NOT NULL,
    status               text        NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'archived')),
    given_name           text        NOT NULL DEFAULT '',
    family_name          text        NOT NULL DEFAULT '',
    legal_name           text        NOT NULL DEFAULT '',
    tax_id               text,
    registration_numbers jsonb       NOT NULL DEFAULT '[]',
    tags                 text[]      NOT NULL DEFAULT '{}',
    custom_fields        jsonb       NOT NULL DEFAULT '{}',
    contact_points       jsonb       NOT NULL DEFAULT '[]',
    addresses            jsonb       NOT NULL DEFAULT '[]',
    merged_into          uuid        REFERENCES parties (id),
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    created_by           text        NOT NULL,
    updated_by           text        NOT NULL,
    version              bigint      NOT NULL DEFAULT 1
);
CREATE INDEX parties_status_id ON parties (status, id);
CREATE INDEX parties_kind_id ON parties (kind, id);
CREATE INDEX parties_display_name_trgm ON parties USING gin (display_name gin_trgm_ops);
CREATE INDEX parties_tax_id ON parties (tax_id) WHERE tax_id IS NOT NULL;
CREATE INDEX parties_tags ON parties USING gin (tags);
-- E-mail and phone look-ups: contact_points @> '[{"kind": "email", "value": "..."}]'.
CREATE INDEX parties_contact_points ON parties USING gin (contact_points jsonb_path_ops);

CREATE TABLE party_bases (
    party_id uuid        NOT NULL REFERENCES parties (id),
    base_id  uuid        NOT NULL REFERENCES bases (id),
    added_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (party_id, base_id)
);
CREATE INDEX party_bases_base ON party_bases (base_id, party_id);

CREATE TABLE persons (
    id                     uuid        PRIMARY KEY,
    -- Set for the person record of a natural-person party; names, contacts and addresses then
    -- come from that party and the columns below stay empty.
    natural_party_id       uuid        UNIQUE REFERENCES parties (id),
    given_name             text        NOT NULL DEFAULT '',
    family_name            text        NOT NULL DEFAULT '',
    private_contact_points jsonb       NOT NULL DEFAULT '[]',
    home_addresses         jsonb       NOT NULL DEFAULT '[]',
    gender                 text        NOT NULL DEFAULT 'unspecified',
    profession             text        NOT NULL DEFAULT '',
    education              text        NOT NULL DEFAULT '',
    birthday               date,
    -- Name days recur yearly: kept as a date in the leap year 2000.
    name_day               date,
    anniversaries          jsonb       NOT NULL DEFAULT '[]',
    family                 jsonb       NOT NULL DEFAULT '[]',
    hobbies                text[]      NOT NULL DEFAULT '{}',
    interests              text[]      NOT NULL DEFAULT '{}',
    remarks                text        NOT NULL DEFAULT '',
    custom_fields          jsonb       NOT NULL DEFAULT '{}',
    created_at             timestamptz NOT NULL DEFAULT now(),
    updated_at             timestamptz NOT NULL DEFAULT now(),
    created_by             text        NOT NULL,
    updated_by             text        NOT NULL,
    version                bigint      NOT NULL DEFAULT 1
);

CREATE TABLE employments (
    id                      uuid   PRIMARY KEY,
    person_id               uuid   NOT NULL REFERENCES persons (id),
    organization_party_id   uuid   NOT NULL REFERENCES parties (id),
    position                text   NOT NULL DEFAULT '',
    department              text   NOT NULL DEFAULT '',
    supervisor_person_id    uuid   REFERENCES persons (id),
    business_contact_points jsonb  NOT NULL DEFAULT '[]',
    start_date              date,
    end_date                date,
    CHECK (end_date IS NULL OR start_date IS NULL OR end_date >= start_date)
);
-- At most one current employment per person.
CREATE UNIQUE INDEX employments_current ON employments (person_id) WHERE end_date IS NULL;
CREATE INDEX employments_organization ON employments (organization_party_id, person_id);

CREATE TABLE custom_field_definitions (
    entity     text        NOT NULL CHECK (entity IN ('party', 'person')),
    key        text        NOT NULL,
    label      text        NOT NULL,
    type       text        NOT NULL CHECK (type IN ('text', 'number', 'date', 'boolean', 'enum')),
    required   boolean     NOT NULL DEFAULT false,
    options    text[]      NOT NULL DEFAULT '{}',
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    created_by text        NOT NULL,
    updated_by text        NOT NULL,
    PRIMARY KEY (entity, key)
);

-- A person may work for several organizations at once, each at most once at a time.
DROP INDEX employments_current;
CREATE UNIQUE INDEX employments_current ON employments (person_id, organization_party_id)
    WHERE end_date IS NULL;

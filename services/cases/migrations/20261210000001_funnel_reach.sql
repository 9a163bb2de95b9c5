-- The funnel reads how far each case got and which visit was its first to a phase, kept as the
-- case moves, instead of working them out from every visit on every call.

-- The furthest phase a case reached that is not a lost one: its 1-based place in its pipeline.
ALTER TABLE cases ADD COLUMN furthest smallint;
-- The case's first entry into this phase (later ones are returns to it).
ALTER TABLE phase_visits ADD COLUMN first boolean NOT NULL DEFAULT false;

UPDATE phase_visits v SET first = true
  FROM (SELECT case_id, phase, min(entered_at) AS entered_at
          FROM phase_visits GROUP BY case_id, phase) f
 WHERE f.case_id = v.case_id AND f.phase = v.phase AND f.entered_at = v.entered_at;

UPDATE cases c SET furthest = f.top
  FROM (SELECT v.case_id, max(p.n) FILTER (WHERE p.phase->>'group' <> 'lost') AS top
          FROM phase_visits v
          JOIN cases k ON k.id = v.case_id
          JOIN pipelines l ON l.id = k.pipeline_id,
               LATERAL jsonb_array_elements(l.phases) WITH ORDINALITY p (phase, n)
         WHERE p.phase->>'code' = v.phase
         GROUP BY v.case_id) f
 WHERE f.case_id = c.id;

-- Kept by the database as each visit is written, so that every version of the service (during a
-- rolling upgrade, the one before this migration too) keeps them alike.
CREATE FUNCTION phase_visit_entered() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.first := NOT EXISTS (
        SELECT 1 FROM phase_visits WHERE case_id = NEW.case_id AND phase = NEW.phase);
    UPDATE cases c SET furthest = greatest(coalesce(c.furthest, 0), p.n)
      FROM pipelines l, jsonb_array_elements(l.phases) WITH ORDINALITY p (phase, n)
     WHERE c.id = NEW.case_id AND l.id = c.pipeline_id
       AND p.phase->>'code' = NEW.phase AND p.phase->>'group' <> 'lost';
    RETURN NEW;
END
$$;

CREATE TRIGGER phase_visits_entered BEFORE INSERT ON phase_visits
    FOR EACH ROW EXECUTE FUNCTION phase_visit_entered();

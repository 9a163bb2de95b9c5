-- Qualifying points per membership and day (UTC), so that a tier's window is a sum over at most
-- its own days, whatever the length of the membership's history. Kept by a trigger on the ledger,
-- so that every way of posting keeps it, in the transaction of the entries: accruals of qualifying
-- point types count, and so do their reversals (negative); spending and its reversals do not.
CREATE TABLE qualifying_days (
    membership_id uuid   NOT NULL REFERENCES memberships (id),
    day           date   NOT NULL,
    points        bigint NOT NULL,
    PRIMARY KEY (membership_id, day)
);

CREATE FUNCTION count_qualifying_points() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO qualifying_days AS q (membership_id, day, points)
    SELECT a.membership_id, (e.created_at AT TIME ZONE 'UTC')::date, sum(e.amount)
    FROM new_entries e
    JOIN accounts a ON a.id = e.account_id AND a.kind = 'member'
    JOIN point_types t ON t.program_id = a.program_id AND t.code = a.point_type AND t.qualifying
    JOIN operations o ON o.id = e.operation_id
    WHERE (o.direction = 'accrue' AND o.reverses IS NULL)
       OR (o.direction = 'settle' AND o.reverses IS NOT NULL)
    GROUP BY 1, 2
    -- In membership and day order, the same for every transaction: no deadlock between them.
    ORDER BY 1, 2
    ON CONFLICT (membership_id, day) DO UPDATE SET points = q.points + excluded.points;
    RETURN NULL;
END
$$;
CREATE TRIGGER ledger_entries_qualifying AFTER INSERT ON ledger_entries
    REFERENCING NEW TABLE AS new_entries
    FOR EACH STATEMENT EXECUTE FUNCTION count_qualifying_points();

INSERT INTO qualifying_days (membership_id, day, points)
SELECT a.membership_id, (e.created_at AT TIME ZONE 'UTC')::date, sum(e.amount)
FROM ledger_entries e
JOIN accounts a ON a.id = e.account_id AND a.kind = 'member'
JOIN point_types t ON t.program_id = a.program_id AND t.code = a.point_type AND t.qualifying
JOIN operations o ON o.id = e.operation_id
WHERE (o.direction = 'accrue' AND o.reverses IS NULL)
   OR (o.direction = 'settle' AND o.reverses IS NOT NULL)
GROUP BY 1, 2;

-- Qualifying points per membership and day (UTC), so that a tier's window is a sum over at most
-- its own days, whatever the length of the membership's history. Written by the postings that
-- count, in the transaction of their entries: accruals of qualifying point types, and their
-- reversals (negative); spending and its reversals do not count. (A statement trigger on
-- ledger_entries did the same at a fifth of bulk accrual's speed.) `crm-loyalty verify` checks the
-- days against the entries.
CREATE TABLE qualifying_days (
    membership_id uuid   NOT NULL REFERENCES memberships (id),
    day           date   NOT NULL,
    points        bigint NOT NULL,
    PRIMARY KEY (membership_id, day)
);

INSERT INTO qualifying_days (membership_id, day, points)
SELECT a.membership_id, (e.created_at AT TIME ZONE 'UTC')::date, sum(e.amount)
FROM ledger_entries e
JOIN accounts a ON a.id = e.account_id AND a.kind = 'member'
JOIN point_types t ON t.program_id = a.program_id AND t.code = a.point_type AND t.qualifying
JOIN operations o ON o.id = e.operation_id
WHERE (o.direction = 'accrue' AND o.reverses IS NULL)
   OR (o.direction = 'settle' AND o.reverses IS NOT NULL)
GROUP BY 1, 2;

//! The ledger's invariants, checked on a live database: after every scenario by the tests, and by
//! an operator with `crm-loyalty verify`, which prints what it finds and exits 1 when anything is
//! wrong. Each rule is one read-only statement over the whole ledger (a scan, not a hot path).

use std::fmt;

use crm_kit::{app::Task, store::Pool};
use sqlx::{Connection, PgConnection};

/// `crm-loyalty verify`.
pub const TASK: Task = Task {
    name: "verify",
    about: "check every ledger invariant and report what breaks them",
    run: |pool| Box::pin(report(pool)),
};

/// Findings listed per rule, at most this many (the count of all is reported too).
const SHOWN: i64 = 20;

/// Each rule and the statement that lists what breaks it, one line per breach.
const RULES: &[(&str, &str)] = &[
    (
        "a member account's balance is the sum of its entries",
        "WITH e AS (SELECT account_id, sum(amount) AS total FROM ledger_entries GROUP BY 1)
         SELECT format('account %s: balance %s, entries sum to %s', a.id, a.balance, coalesce(e.total, 0))
         FROM accounts a LEFT JOIN e ON e.account_id = a.id
         WHERE a.kind = 'member' AND a.balance <> coalesce(e.total, 0)",
    ),
    (
        "a member account's open lots hold its balance (none while it is negative)",
        "WITH l AS (SELECT account_id, sum(remaining) AS total FROM point_lots GROUP BY 1)
         SELECT format('account %s: balance %s, open lots hold %s', a.id, a.balance, coalesce(l.total, 0))
         FROM accounts a LEFT JOIN l ON l.account_id = a.id
         WHERE a.kind = 'member' AND greatest(a.balance, 0) <> coalesce(l.total, 0)",
    ),
    (
        "a lot's remaining points are between none and what it earned",
        "SELECT format('lot %s of account %s: %s remaining of %s', id, account_id, remaining, amount)
         FROM point_lots WHERE remaining < 0 OR remaining > amount",
    ),
    (
        "a member account's held points are its pending holds",
        "WITH h AS (SELECT account_id, sum(points) AS total FROM holds WHERE status = 'pending' GROUP BY 1)
         SELECT format('account %s: held %s, pending holds %s', a.id, a.held, coalesce(h.total, 0))
         FROM accounts a LEFT JOIN h ON h.account_id = a.id
         WHERE a.kind = 'member' AND a.held <> coalesce(h.total, 0)",
    ),
    (
        "every operation's entries sum to zero",
        "SELECT format('operation %s: entries sum to %s', operation_id, sum(amount))
         FROM ledger_entries GROUP BY operation_id HAVING sum(amount) <> 0",
    ),
    (
        "an operation's reversals take back at most its points, on its account",
        "SELECT format('operation %s: %s points, reversals take back %s', o.id, o.points, sum(r.points))
         FROM operations o JOIN operations r ON r.reverses = o.id
         GROUP BY o.id, o.points, o.account_id
         HAVING sum(r.points) > o.points OR bool_or(r.account_id <> o.account_id)",
    ),
    (
        "every entry, lot and lot take names an operation and an account that exist",
        "SELECT format('entry %s: operation %s, account %s', e.id, e.operation_id, e.account_id)
         FROM ledger_entries e
         WHERE NOT EXISTS (SELECT 1 FROM operations o WHERE o.id = e.operation_id)
            OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = e.account_id)
         UNION ALL
         SELECT format('lot %s: operation %s, account %s', l.id, l.operation_id, l.account_id)
         FROM point_lots l
         WHERE NOT EXISTS (SELECT 1 FROM operations o WHERE o.id = l.operation_id)
            OR NOT EXISTS (SELECT 1 FROM accounts a WHERE a.id = l.account_id)
         UNION ALL
         SELECT format('lot take: operation %s, lot of operation %s', t.operation_id, t.lot_operation)
         FROM lot_takes t
         WHERE NOT EXISTS (SELECT 1 FROM operations o WHERE o.id = t.operation_id)
            OR NOT EXISTS (SELECT 1 FROM point_lots l WHERE l.operation_id = t.lot_operation)",
    ),
    (
        "the whole ledger sums to zero",
        "SELECT format('all entries sum to %s', sum(amount)) FROM ledger_entries
         HAVING coalesce(sum(amount), 0) <> 0",
    ),
    (
        "a membership's qualifying points per day are its qualifying entries of that day",
        "WITH e AS (
             SELECT a.membership_id, (e.created_at AT TIME ZONE 'UTC')::date AS day, sum(e.amount) AS total
             FROM ledger_entries e
             JOIN accounts a ON a.id = e.account_id AND a.kind = 'member'
             JOIN point_types t ON t.program_id = a.program_id AND t.code = a.point_type AND t.qualifying
             JOIN operations o ON o.id = e.operation_id
             WHERE (o.direction = 'accrue' AND o.reverses IS NULL)
                OR (o.direction = 'settle' AND o.reverses IS NOT NULL)
             GROUP BY 1, 2)
         SELECT format('membership %s on %s: qualifying entries %s, day total %s',
                       coalesce(e.membership_id, q.membership_id), coalesce(e.day, q.day),
                       coalesce(e.total, 0), coalesce(q.points, 0))
         FROM e FULL JOIN qualifying_days q ON q.membership_id = e.membership_id AND q.day = e.day
         WHERE coalesce(e.total, 0) <> coalesce(q.points, 0)",
    ),
    (
        "no balance is below what its point type allows",
        "SELECT format('account %s: balance %s, point type %s allows %s', a.id, a.balance, t.code,
                       t.reversal_floor)
         FROM accounts a JOIN point_types t ON t.program_id = a.program_id AND t.code = a.point_type
         WHERE a.kind = 'member' AND NOT t.allow_negative AND a.balance < t.reversal_floor",
    ),
];

/// What breaks one rule: how many breaches, and the first [`SHOWN`] of them.
#[derive(Debug)]
pub struct Finding {
    pub rule: &'static str,
    pub count: i64,
    pub shown: Vec<String>,
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "BROKEN: {} ({} breaches)", self.rule, self.count)?;
        for line in &self.shown {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// Every rule that does not hold, in one repeatable-read snapshot so that concurrent postings
/// cannot make a consistent ledger look broken.
pub async fn check(conn: &mut PgConnection) -> sqlx::Result<Vec<Finding>> {
    let mut snapshot = conn
        .begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        .await?;
    let mut findings = Vec::new();
    for (rule, sql) in RULES {
        let lines: Vec<(String, i64)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "SELECT line, count(*) OVER () FROM ({sql}) AS breaches(line) LIMIT {SHOWN}"
        )))
        .fetch_all(&mut *snapshot)
        .await?;
        if let Some((_, count)) = lines.first() {
            findings.push(Finding {
                rule,
                count: *count,
                shown: lines.into_iter().map(|(line, _)| line).collect(),
            });
        }
    }
    snapshot.commit().await?;
    Ok(findings)
}

async fn report(pool: Pool) -> anyhow::Result<bool> {
    let findings = check(&mut *pool.acquire().await?).await?;
    for finding in &findings {
        print!("{finding}");
    }
    if findings.is_empty() {
        println!("ledger verified: all {} rules hold", RULES.len());
    }
    Ok(findings.is_empty())
}

//! Point lots: what each credit earned and when it expires, consumed oldest-expiring first.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::ExpiryPolicy;

use super::{PointTypeRow, ProgramRow};

/// When points credited now to a point type expire: never, N months after earning, or at the end
/// of the program's last valid day.
pub fn expiry_of(
    point_type: &PointTypeRow,
    program: &ProgramRow,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match point_type.expiry_policy {
        ExpiryPolicy::MonthsAfterEarning => {
            now.checked_add_months(chrono::Months::new(point_type.expiry_months.max(0) as u32))
        }
        ExpiryPolicy::EndOfProgram => program
            .valid_to
            .and_then(|day| day.succ_opt())
            .and_then(|day| day.and_hms_opt(0, 0, 0))
            .map(|midnight| midnight.and_utc()),
        ExpiryPolicy::Never => None,
    }
}

/// Records a credit as a lot that later debits and the expiry sweep draw from. The account's
/// balance is already credited: a credit that first pays back a negative balance makes a lot of
/// only what it takes the balance above zero, so that open lots always hold the balance.
pub async fn add_lot(
    tx: &mut Tx,
    account: Uuid,
    operation: Uuid,
    amount: i64,
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO point_lots (account_id, operation_id, amount, remaining, expires_at)
         SELECT id, $2, least($3, balance), least($3, balance), $4 FROM accounts
         WHERE id = $1 AND balance > 0",
    )
    .bind(account)
    .bind(operation)
    .bind(amount)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Takes `amount` from the account's open lots: first the lot of `prefer` (a reversal takes back
/// the very points it reverses), then oldest-expiring first. A debit into a negative balance
/// takes what the lots hold.
pub async fn consume_lots(
    tx: &mut Tx,
    account: Uuid,
    amount: i64,
    prefer: Option<Uuid>,
) -> sqlx::Result<()> {
    let lots: Vec<(i64, i64)> = sqlx::query_as(
        "SELECT id, remaining FROM point_lots WHERE account_id = $1 AND remaining > 0
         ORDER BY operation_id IS DISTINCT FROM $2, expires_at NULLS LAST, id FOR UPDATE",
    )
    .bind(account)
    .bind(prefer)
    .fetch_all(&mut **tx)
    .await?;
    let mut left = amount;
    let mut taken: Vec<(i64, i64)> = Vec::new();
    for (id, remaining) in lots {
        if left == 0 {
            break;
        }
        let take = remaining.min(left);
        taken.push((id, take));
        left -= take;
    }
    let (ids, takes): (Vec<i64>, Vec<i64>) = taken.into_iter().unzip();
    sqlx::query(
        "UPDATE point_lots l SET remaining = l.remaining - t.take
         FROM unnest($1::bigint[], $2::bigint[]) AS t(id, take) WHERE l.id = t.id",
    )
    .bind(&ids)
    .bind(&takes)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueLot {
    pub id: i64,
    pub account_id: Uuid,
    pub remaining: i64,
    pub program_id: Uuid,
    pub membership_id: Uuid,
    pub person_id: Option<Uuid>,
    pub point_type: String,
    pub balance: i64,
    pub held: i64,
}

/// Lots past their expiry with points left on accounts with points not held, locked with their
/// account; replicas skip them. A due lot of an account whose points are all held waits for the
/// hold to end.
pub async fn lock_due_lots(tx: &mut Tx, limit: i64) -> sqlx::Result<Vec<DueLot>> {
    sqlx::query_as(
        "SELECT l.id, l.account_id, l.remaining, a.program_id, a.membership_id, a.person_id, a.point_type,
                a.balance, a.held
         FROM point_lots l JOIN accounts a ON a.id = l.account_id
         WHERE l.remaining > 0 AND l.expires_at <= now() AND a.balance > a.held
         ORDER BY l.expires_at LIMIT $1 FOR UPDATE OF l, a SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Takes `points` out of a lot as they expire.
pub async fn expire_from_lot(tx: &mut Tx, id: i64, points: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE point_lots SET remaining = remaining - $2 WHERE id = $1")
        .bind(id)
        .bind(points)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Open points of an account by the day they expire, soonest first.
pub async fn expiry_forecast(
    conn: &mut PgConnection,
    account: Uuid,
) -> sqlx::Result<Vec<(NaiveDate, i64)>> {
    sqlx::query_as(
        "SELECT (expires_at AT TIME ZONE 'UTC')::date AS day, sum(remaining)::bigint
         FROM point_lots WHERE account_id = $1 AND remaining > 0 AND expires_at IS NOT NULL
         GROUP BY 1 ORDER BY 1",
    )
    .bind(account)
    .fetch_all(conn)
    .await
}

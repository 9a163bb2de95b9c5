//! Point lots: what each credit earned and when it expires, consumed oldest-expiring first.

use chrono::{DateTime, NaiveDate, Utc};
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

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueLot {
    pub id: i64,
    pub program_id: Uuid,
    pub membership_id: Uuid,
    pub person_id: Option<Uuid>,
    pub point_type: String,
}

/// Lots past their expiry with points left, on accounts with points not held (a due lot of an
/// account whose points are all held waits for the hold to end), soonest due first. Read without
/// locks: the posting engine locks them in its order and decides on what it finds then.
pub async fn due_lots(conn: &mut PgConnection, limit: i64) -> sqlx::Result<Vec<DueLot>> {
    sqlx::query_as(
        "SELECT l.id, a.program_id, a.membership_id, a.person_id, a.point_type
         FROM point_lots l JOIN accounts a ON a.id = l.account_id
         WHERE l.remaining > 0 AND l.expires_at <= now() AND a.balance > a.held
         ORDER BY l.expires_at LIMIT $1",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
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

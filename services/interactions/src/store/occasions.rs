//! Persons' occasions, the persons whose occasions are to be read again, and the reminders made.

use chrono::{DateTime, NaiveDate, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OccasionRow {
    pub person_id: Uuid,
    pub kind: String,
    pub label: String,
    pub month: i16,
    pub day: i16,
    pub person_name: String,
    pub owner: String,
    pub client_ids: Vec<Uuid>,
    pub next_on: NaiveDate,
}

/// Asks for `person`'s occasions to be read again from parties.
pub async fn ask_refresh(tx: &mut Tx, person: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO occasion_refresh (person_id) VALUES ($1)
         ON CONFLICT (person_id) DO UPDATE SET asked_at = now(), next_at = now()",
    )
    .bind(person)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Up to `limit` persons to read again, each held for a minute (read again after that if the
/// reader fails), with when they were asked for.
pub async fn take_refresh(
    conn: &mut PgConnection,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, DateTime<Utc>)>> {
    sqlx::query_as(
        "UPDATE occasion_refresh SET next_at = now() + interval '1 minute'
          WHERE person_id IN (SELECT person_id FROM occasion_refresh WHERE next_at <= now()
                               ORDER BY next_at LIMIT $1 FOR UPDATE SKIP LOCKED)
          RETURNING person_id, asked_at",
    )
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// `person`'s occasions are now `rows`; done, unless asked again since `asked_at`.
pub async fn replace(
    tx: &mut Tx,
    person: Uuid,
    asked_at: DateTime<Utc>,
    rows: &[OccasionRow],
) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM occasions WHERE person_id = $1")
        .bind(person)
        .execute(&mut **tx)
        .await?;
    for r in rows {
        sqlx::query(
            "INSERT INTO occasions (person_id, kind, label, month, day, person_name, owner,
                 client_ids, next_on)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT DO NOTHING",
        )
        .bind(r.person_id)
        .bind(&r.kind)
        .bind(&r.label)
        .bind(r.month)
        .bind(r.day)
        .bind(&r.person_name)
        .bind(&r.owner)
        .bind(&r.client_ids)
        .bind(r.next_on)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("DELETE FROM occasion_refresh WHERE person_id = $1 AND asked_at = $2")
        .bind(person)
        .bind(asked_at)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Forgets the occasions of `persons` (gone from parties, or erased), and that they were to be
/// read again.
pub async fn forget(tx: &mut Tx, persons: &[Uuid]) -> sqlx::Result<()> {
    for statement in [
        "DELETE FROM occasions WHERE person_id = ANY($1) OR client_ids && $1",
        "DELETE FROM occasion_refresh WHERE person_id = ANY($1)",
    ] {
        sqlx::query(statement)
            .bind(persons)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Occasions falling on or before `until`, soonest first.
pub async fn due(
    conn: &mut PgConnection,
    until: NaiveDate,
    limit: i64,
) -> sqlx::Result<Vec<OccasionRow>> {
    sqlx::query_as(
        "SELECT person_id, kind, label, month, day, person_name, owner, client_ids, next_on
           FROM occasions WHERE next_on <= $1
          ORDER BY next_on LIMIT $2",
    )
    .bind(until)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// `row` as it is now, locked, if it is still due by `until`.
pub async fn lock_due(
    tx: &mut Tx,
    row: &OccasionRow,
    until: NaiveDate,
) -> sqlx::Result<Option<OccasionRow>> {
    sqlx::query_as(
        "SELECT person_id, kind, label, month, day, person_name, owner, client_ids, next_on
           FROM occasions
          WHERE person_id = $1 AND kind = $2 AND label = $3 AND month = $4 AND day = $5
            AND next_on <= $6
          FOR UPDATE SKIP LOCKED",
    )
    .bind(row.person_id)
    .bind(&row.kind)
    .bind(&row.label)
    .bind(row.month)
    .bind(row.day)
    .bind(until)
    .fetch_optional(&mut **tx)
    .await
}

/// Records the reminder of `row` for its `next_on`; false when there was one already.
pub async fn remember_reminder(tx: &mut Tx, row: &OccasionRow, task: Uuid) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO occasion_reminders (person_id, kind, label, occurs_on, task_id)
         VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
    )
    .bind(row.person_id)
    .bind(&row.kind)
    .bind(&row.label)
    .bind(row.next_on)
    .bind(task)
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// Drops one occasion (its person erased, or its day not one of the year).
pub async fn drop_one(tx: &mut Tx, row: &OccasionRow) -> sqlx::Result<()> {
    sqlx::query(
        "DELETE FROM occasions
          WHERE person_id = $1 AND kind = $2 AND label = $3 AND month = $4 AND day = $5",
    )
    .bind(row.person_id)
    .bind(&row.kind)
    .bind(&row.label)
    .bind(row.month)
    .bind(row.day)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn move_on(tx: &mut Tx, row: &OccasionRow, next_on: NaiveDate) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE occasions SET next_on = $6
          WHERE person_id = $1 AND kind = $2 AND label = $3 AND month = $4 AND day = $5",
    )
    .bind(row.person_id)
    .bind(&row.kind)
    .bind(&row.label)
    .bind(row.month)
    .bind(row.day)
    .bind(next_on)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

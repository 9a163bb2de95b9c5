//! Mailboxes and where reading each one resumes.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{MailboxSecurity, MailboxStatus};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MailboxRow {
    pub id: Uuid,
    pub host: String,
    pub port: i32,
    pub security: MailboxSecurity,
    pub username: String,
    pub password_ref: String,
    pub folder: String,
    pub own_addresses: Vec<String>,
    pub status: MailboxStatus,
    pub uid_validity: Option<i64>,
    pub last_uid: i64,
    pub last_sync_at: Option<DateTime<Utc>>,
    pub last_error: String,
    pub last_error_at: Option<DateTime<Utc>>,
    pub failures: i32,
    pub imported_count: i64,
    pub duplicate_count: i64,
    pub skipped_count: i64,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

const COLUMNS: &str = "id, host, port, security, username, password_ref, folder, own_addresses,
    status, uid_validity, last_uid, last_sync_at, last_error, last_error_at, failures,
    imported_count, duplicate_count, skipped_count, created_at, updated_at, created_by, updated_by,
    version";

/// A new mailbox, read at once; `None` when the same folder of the same account is connected.
pub async fn insert(tx: &mut Tx, m: &MailboxRow) -> sqlx::Result<Option<MailboxRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO mailboxes (id, host, port, security, username, password_ref, folder,
             own_addresses, status, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'active', $9, $9)
         ON CONFLICT (lower(host), port, username, folder) WHERE status <> 'disconnected'
         DO NOTHING
         RETURNING {COLUMNS}"
    )))
    .bind(m.id)
    .bind(&m.host)
    .bind(m.port)
    .bind(m.security)
    .bind(&m.username)
    .bind(&m.password_ref)
    .bind(&m.folder)
    .bind(&m.own_addresses)
    .bind(&m.created_by)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<MailboxRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM mailboxes WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

/// Stops reading the mailbox; a reader holding it stops at its next message.
pub async fn disconnect(tx: &mut Tx, id: Uuid, by: &str) -> sqlx::Result<Option<MailboxRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "WITH changed AS (
             UPDATE mailboxes SET status = 'disconnected', updated_by = $2, updated_at = now(),
                 version = version + 1
              WHERE id = $1 AND status <> 'disconnected'
              RETURNING {COLUMNS})
         SELECT {COLUMNS} FROM changed
         UNION ALL SELECT {COLUMNS} FROM mailboxes
          WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM changed)"
    )))
    .bind(id)
    .bind(by)
    .fetch_optional(&mut **tx)
    .await
}

/// Oldest first, after the id of the last one of the page before.
pub async fn list(
    conn: &mut PgConnection,
    status: Option<MailboxStatus>,
    after: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<MailboxRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM mailboxes
          WHERE ($1::text IS NULL OR status = $1) AND ($2::uuid IS NULL OR id > $2)
          ORDER BY id LIMIT $3"
    )))
    .bind(status)
    .bind(after)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Takes the mailbox most overdue for reading, for `holder`, until `lease` passes.
pub async fn lease_due(
    conn: &mut PgConnection,
    holder: Uuid,
    lease: chrono::TimeDelta,
) -> sqlx::Result<Option<MailboxRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE mailboxes SET leased_until = now() + $1, leased_by = $2
          WHERE id = (SELECT id FROM mailboxes
                       WHERE status <> 'disconnected' AND next_sync_at <= now()
                         AND (leased_until IS NULL OR leased_until < now())
                       ORDER BY next_sync_at LIMIT 1
                       FOR UPDATE SKIP LOCKED)
          RETURNING {COLUMNS}"
    )))
    .bind(lease)
    .bind(holder)
    .fetch_optional(conn)
    .await
}

/// The folder was renumbered (or is read for the first time): reading starts over under
/// `uid_validity`. False when `holder` no longer holds the mailbox.
pub async fn restart(
    conn: &mut PgConnection,
    id: Uuid,
    holder: Uuid,
    uid_validity: i64,
) -> sqlx::Result<bool> {
    let restarted = sqlx::query(
        "UPDATE mailboxes SET uid_validity = $2, last_uid = 0 WHERE id = $1 AND leased_by = $3",
    )
    .bind(id)
    .bind(uid_validity)
    .bind(holder)
    .execute(conn)
    .await?;
    Ok(restarted.rows_affected() == 1)
}

/// What became of one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Imported,
    Duplicate,
    Skipped,
}

/// Moves the cursor past `uid` and counts its outcome, renewing `holder`'s lease; false when the
/// mailbox was disconnected or its lease lost meanwhile, and reading should stop.
pub async fn advance(
    conn: &mut PgConnection,
    id: Uuid,
    holder: Uuid,
    uid: i64,
    outcome: Outcome,
    lease: chrono::TimeDelta,
) -> sqlx::Result<bool> {
    let moved = sqlx::query(
        "UPDATE mailboxes SET last_uid = greatest(last_uid, $2),
             imported_count = imported_count + $3, duplicate_count = duplicate_count + $4,
             skipped_count = skipped_count + $5, leased_until = now() + $6
          WHERE id = $1 AND status <> 'disconnected' AND leased_by = $7",
    )
    .bind(id)
    .bind(uid)
    .bind(i64::from(outcome == Outcome::Imported))
    .bind(i64::from(outcome == Outcome::Duplicate))
    .bind(i64::from(outcome == Outcome::Skipped))
    .bind(lease)
    .bind(holder)
    .execute(conn)
    .await?;
    Ok(moved.rows_affected() == 1)
}

/// A read went well: next one after `poll`.
pub async fn synced(
    conn: &mut PgConnection,
    id: Uuid,
    holder: Uuid,
    poll: chrono::TimeDelta,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mailboxes SET status = CASE WHEN status = 'disconnected' THEN status ELSE 'active' END,
             failures = 0, last_sync_at = now(), next_sync_at = now() + $2,
             leased_until = NULL, leased_by = NULL
          WHERE id = $1 AND leased_by = $3",
    )
    .bind(id)
    .bind(poll)
    .bind(holder)
    .execute(conn)
    .await?;
    Ok(())
}

/// A read failed with `error`: tried again after `poll` doubled per failure in a row, at most an
/// hour.
pub async fn failed(
    conn: &mut PgConnection,
    id: Uuid,
    holder: Uuid,
    error: &str,
    poll: chrono::TimeDelta,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE mailboxes SET status = CASE WHEN status = 'disconnected' THEN status ELSE 'failing' END,
             failures = failures + 1, last_error = $2, last_error_at = now(),
             next_sync_at = now() + least($3 * power(2, least(failures, 12)), interval '1 hour'),
             leased_until = NULL, leased_by = NULL
          WHERE id = $1 AND leased_by = $4",
    )
    .bind(id)
    .bind(error)
    .bind(poll)
    .bind(holder)
    .execute(conn)
    .await?;
    Ok(())
}

/// Gives back every lease `holder` has (on shutdown), so the next reader need not wait for them.
pub async fn release(conn: &mut PgConnection, holder: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE mailboxes SET leased_until = NULL, leased_by = NULL WHERE leased_by = $1")
        .bind(holder)
        .execute(conn)
        .await?;
    Ok(())
}

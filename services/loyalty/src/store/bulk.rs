//! Bulk accrual jobs, their items, and the set-based statements that credit a batch of members.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use serde::{Deserialize, Serialize};
use sqlx::{PgConnection, types::Json};
use uuid::Uuid;

use crate::domain::BulkStatus;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct JobRow {
    pub id: Uuid,
    pub client_id: String,
    pub program_id: Uuid,
    pub operation_type: String,
    pub points: i64,
    pub reference: String,
    pub status: BulkStatus,
    pub total: i64,
    pub done: i64,
    pub failed: i64,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub completed_at: Option<DateTime<Utc>>,
    pub start_at: DateTime<Utc>,
    pub repeat_every_days: i32,
    pub runs: i32,
    pub run: i32,
    pub series: String,
    pub selection: Option<Json<Chosen>>,
}

/// A job's columns; its counts are its own plus its batches'.
pub(super) const JOB_COLUMNS: &str =
    "id, client_id, program_id, operation_type, points, reference, status, total,
    done + coalesce((SELECT sum(b.done) FROM bulk_accrual_batches b
                     WHERE b.job_id = bulk_accruals.id), 0)::bigint AS done,
    failed + coalesce((SELECT sum(b.failed) FROM bulk_accrual_batches b
                       WHERE b.job_id = bulk_accruals.id), 0)::bigint AS failed,
    created_by, created_at, completed_at, start_at, repeat_every_days, runs, run, series,
    selection";

/// Whom a job credits, as asked: resolved to memberships when a run starts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Chosen {
    Memberships(Vec<Uuid>),
    /// The memberships of the parties in a base of the parties service.
    Base(String),
    All,
}

/// Who a run credits, among the program's memberships.
pub enum Selection {
    Memberships(Vec<Uuid>),
    /// The memberships of these parties.
    Parties(Vec<Uuid>),
    All,
}

pub async fn lock_job(tx: &mut Tx, client_id: &str) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM bulk_accruals WHERE client_id = $1 FOR UPDATE"
    )))
    .bind(client_id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn get_job(conn: &mut PgConnection, client_id: &str) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM bulk_accruals WHERE client_id = $1"
    )))
    .bind(client_id)
    .fetch_optional(conn)
    .await
}

/// A page of the program's jobs, newest first, before `before` (ids are time-ordered).
pub async fn list_jobs(
    conn: &mut PgConnection,
    program: Uuid,
    status: Option<BulkStatus>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<JobRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM bulk_accruals
         WHERE program_id = $1 AND ($2::text IS NULL OR status = $2) AND ($3::uuid IS NULL OR id < $3)
         ORDER BY id DESC LIMIT $4"
    )))
    .bind(program)
    .bind(status)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn cancel_job(tx: &mut Tx, job: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bulk_accruals SET status = 'cancelled', completed_at = now() WHERE id = $1",
    )
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// A job (one run of its series) as it is recorded.
pub struct NewJob<'a> {
    pub id: Uuid,
    pub client_id: &'a str,
    pub program_id: Uuid,
    pub operation_type: &'a str,
    pub points: i64,
    pub reference: &'a str,
    pub created_by: &'a str,
    pub status: BulkStatus,
    pub start_at: DateTime<Utc>,
    pub repeat_every_days: i32,
    pub runs: i32,
    pub run: i32,
    pub series: &'a str,
    pub selection: &'a Chosen,
}

/// Inserts the job; false when its client id is taken (a later run scheduled twice).
pub async fn insert_job(tx: &mut Tx, job: &NewJob<'_>) -> sqlx::Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO bulk_accruals (id, client_id, program_id, operation_type, points, reference,
             total, created_by, status, start_at, repeat_every_days, runs, run, series, selection)
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (client_id) DO NOTHING",
    )
    .bind(job.id)
    .bind(job.client_id)
    .bind(job.program_id)
    .bind(job.operation_type)
    .bind(job.points)
    .bind(job.reference)
    .bind(job.created_by)
    .bind(job.status)
    .bind(job.start_at)
    .bind(job.repeat_every_days)
    .bind(job.runs)
    .bind(job.run)
    .bind(job.series)
    .bind(Json(job.selection))
    .execute(&mut **tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

/// The earliest scheduled job whose start has come, read without a lock.
pub async fn due_job(conn: &mut PgConnection) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM bulk_accruals WHERE status = 'scheduled' AND start_at <= now()
         ORDER BY start_at LIMIT 1"
    )))
    .fetch_optional(conn)
    .await
}

pub async fn set_job_running(tx: &mut Tx, job: Uuid) -> sqlx::Result<()> {
    sqlx::query("UPDATE bulk_accruals SET status = 'running' WHERE id = $1")
        .bind(job)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Cancels the series' scheduled runs; returns their client ids.
pub async fn cancel_scheduled_runs(tx: &mut Tx, series: &str) -> sqlx::Result<Vec<String>> {
    sqlx::query_scalar(
        "UPDATE bulk_accruals SET status = 'cancelled', completed_at = now()
         WHERE series = $1 AND status = 'scheduled' RETURNING client_id",
    )
    .bind(series)
    .fetch_all(&mut **tx)
    .await
}

/// How many of `ids` are memberships of the program.
pub async fn count_program_memberships(
    conn: &mut PgConnection,
    program: Uuid,
    ids: &[Uuid],
) -> sqlx::Result<i64> {
    sqlx::query_scalar("SELECT count(*) FROM memberships WHERE program_id = $1 AND id = ANY($2)")
        .bind(program)
        .bind(ids)
        .fetch_one(conn)
        .await
}

/// Adds the selected memberships of the program as the job's items; returns how many.
pub async fn add_job_items(
    tx: &mut Tx,
    job: Uuid,
    program: Uuid,
    selection: &Selection,
) -> sqlx::Result<i64> {
    let (filter, ids): (&str, &[Uuid]) = match selection {
        Selection::Memberships(ids) => ("AND id = ANY($3)", ids),
        Selection::Parties(ids) => ("AND party_id = ANY($3)", ids),
        Selection::All => ("AND $3::uuid[] IS NOT NULL", &[]),
    };
    let added = sqlx::query(sqlx::AssertSqlSafe(format!(
        "INSERT INTO bulk_accrual_items (job_id, membership_id)
         SELECT $1, id FROM memberships WHERE program_id = $2 {filter} ORDER BY id
         ON CONFLICT DO NOTHING"
    )))
    .bind(job)
    .bind(program)
    .bind(ids)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(added as i64)
}

pub async fn set_job_total(tx: &mut Tx, job: Uuid, total: i64) -> sqlx::Result<()> {
    sqlx::query("UPDATE bulk_accruals SET total = $2 WHERE id = $1")
        .bind(job)
        .bind(total)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// The oldest running job, held with a key-share lock: every worker may credit a batch of it at
/// once, and a cancellation (which locks it for update) waits for their batches. A job being
/// cancelled is skipped.
pub async fn lock_running_job(tx: &mut Tx) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM bulk_accruals WHERE status = 'running'
         ORDER BY created_at LIMIT 1 FOR KEY SHARE SKIP LOCKED"
    )))
    .fetch_optional(&mut **tx)
    .await
}

/// Up to `limit` pending items of the job that no other worker holds, locked in membership order
/// (the caller then locks their memberships through the posting engine).
pub async fn lock_pending_items(tx: &mut Tx, job: Uuid, limit: i64) -> sqlx::Result<Vec<Uuid>> {
    sqlx::query_scalar(
        "SELECT membership_id FROM bulk_accrual_items
         WHERE job_id = $1 AND status = 'pending' ORDER BY membership_id LIMIT $2
         FOR NO KEY UPDATE SKIP LOCKED",
    )
    .bind(job)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

/// Whether the job has items not credited yet, counting those another worker is crediting now.
pub async fn any_pending(tx: &mut Tx, job: Uuid) -> sqlx::Result<bool> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM bulk_accrual_items WHERE job_id = $1 AND status = 'pending')",
    )
    .bind(job)
    .fetch_one(&mut **tx)
    .await
}

/// Completes the running job; false when another worker did first.
pub async fn complete_job(tx: &mut Tx, job: Uuid) -> sqlx::Result<bool> {
    let completed = sqlx::query(
        "UPDATE bulk_accruals SET status = 'completed', completed_at = now()
         WHERE id = $1 AND status = 'running'",
    )
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(completed.rows_affected() == 1)
}

/// Marks the items of a batch done (credited) or failed, and counts them in a row of the batch's.
pub async fn record_items(
    tx: &mut Tx,
    job: Uuid,
    all: &[Uuid],
    credited: &[Uuid],
    done: i64,
    failed: i64,
) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bulk_accrual_items SET status = CASE WHEN membership_id = ANY($3) THEN 'done' ELSE 'failed' END
         WHERE job_id = $1 AND membership_id = ANY($2)",
    )
    .bind(job)
    .bind(all)
    .bind(credited)
    .execute(&mut **tx)
    .await?;
    sqlx::query("INSERT INTO bulk_accrual_batches (job_id, done, failed) VALUES ($1, $2, $3)")
        .bind(job)
        .bind(done)
        .bind(failed)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

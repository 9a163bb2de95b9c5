//! Bulk accrual jobs, their items, and the set-based statements that credit a batch of members.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{BulkStatus, MembershipStatus};

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
}

pub(super) const JOB_COLUMNS: &str =
    "id, client_id, program_id, operation_type, points, reference, status, total, done,
    failed, created_by, created_at, completed_at";

/// Who a new job credits, among the program's memberships.
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

/// A job as it starts.
pub struct NewJob<'a> {
    pub id: Uuid,
    pub client_id: &'a str,
    pub program_id: Uuid,
    pub operation_type: &'a str,
    pub points: i64,
    pub reference: &'a str,
    pub created_by: &'a str,
}

pub async fn insert_job(tx: &mut Tx, job: &NewJob<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO bulk_accruals (id, client_id, program_id, operation_type, points, reference, total, created_by)
         VALUES ($1, $2, $3, $4, $5, $6, 0, $7)",
    )
    .bind(job.id)
    .bind(job.client_id)
    .bind(job.program_id)
    .bind(job.operation_type)
    .bind(job.points)
    .bind(job.reference)
    .bind(job.created_by)
    .execute(&mut **tx)
    .await?;
    Ok(())
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
         SELECT $1, id FROM memberships WHERE program_id = $2 {filter}
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

/// The oldest running job no other replica is working on, locked.
pub async fn lock_running_job(tx: &mut Tx) -> sqlx::Result<Option<JobRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {JOB_COLUMNS} FROM bulk_accruals WHERE status = 'running'
         ORDER BY created_at LIMIT 1 FOR UPDATE SKIP LOCKED"
    )))
    .fetch_optional(&mut **tx)
    .await
}

/// Up to `limit` pending items of the job, locked with their memberships (in membership order, the
/// lock order of every posting), with the membership's status now.
pub async fn lock_pending_items(
    tx: &mut Tx,
    job: Uuid,
    limit: i64,
) -> sqlx::Result<Vec<(Uuid, MembershipStatus)>> {
    sqlx::query_as(
        "SELECT i.membership_id, m.status FROM bulk_accrual_items i JOIN memberships m ON m.id = i.membership_id
         WHERE i.job_id = $1 AND i.status = 'pending' ORDER BY i.membership_id LIMIT $2 FOR NO KEY UPDATE OF i, m",
    )
    .bind(job)
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

pub async fn complete_job(tx: &mut Tx, job: Uuid) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE bulk_accruals SET status = 'completed', completed_at = now() WHERE id = $1",
    )
    .bind(job)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks the items of a batch done (credited) or failed, and counts them on the job.
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
    sqlx::query("UPDATE bulk_accruals SET done = done + $2, failed = failed + $3 WHERE id = $1")
        .bind(job)
        .bind(done)
        .bind(failed)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Creates the memberships' own accounts of the point type where missing.
pub async fn ensure_member_accounts(
    tx: &mut Tx,
    program: Uuid,
    point_type: &str,
    memberships: &[Uuid],
) -> sqlx::Result<()> {
    let new_ids: Vec<Uuid> = memberships.iter().map(|_| Uuid::now_v7()).collect();
    sqlx::query(
        "INSERT INTO accounts (id, program_id, point_type, kind, membership_id)
         SELECT id, $1, $2, 'member', membership FROM unnest($3::uuid[], $4::uuid[]) AS a(id, membership)
         ON CONFLICT DO NOTHING",
    )
    .bind(program)
    .bind(point_type)
    .bind(&new_ids)
    .bind(memberships)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Adds `points` to the memberships' own accounts; returns (account, membership, new balance).
pub async fn credit_member_accounts(
    tx: &mut Tx,
    memberships: &[Uuid],
    point_type: &str,
    points: i64,
) -> sqlx::Result<Vec<(Uuid, Uuid, i64)>> {
    sqlx::query_as(
        "UPDATE accounts SET balance = balance + $3, updated_at = now()
         WHERE kind = 'member' AND membership_id = ANY($1) AND person_id IS NULL AND point_type = $2
         RETURNING id, membership_id, balance",
    )
    .bind(memberships)
    .bind(point_type)
    .bind(points)
    .fetch_all(&mut **tx)
    .await
}

/// One batch of identical accruals, one per account.
pub struct AccrualBatch<'a> {
    pub operation_ids: &'a [Uuid],
    pub client_ids: &'a [String],
    pub accounts: &'a [Uuid],
    pub balances: &'a [i64],
    pub operation_type: &'a str,
    pub points: i64,
    pub reference: &'a str,
    pub created_by: &'a str,
}

/// The batch's operations and both sides of their entries (issuance gives, members receive).
pub async fn post_accruals(
    tx: &mut Tx,
    batch: &AccrualBatch<'_>,
    issuance: Uuid,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO operations (id, client_id, account_id, operation_type, direction, points, balance_after,
             reference, created_by)
         SELECT id, client_id, account_id, $5, 'accrue', $6, balance, $7, $8
         FROM unnest($1::uuid[], $2::text[], $3::uuid[], $4::bigint[]) AS o(id, client_id, account_id, balance)",
    )
    .bind(batch.operation_ids)
    .bind(batch.client_ids)
    .bind(batch.accounts)
    .bind(batch.balances)
    .bind(batch.operation_type)
    .bind(batch.points)
    .bind(batch.reference)
    .bind(batch.created_by)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO ledger_entries (operation_id, account_id, amount, balance_after)
         SELECT id, account_id, $4, balance FROM unnest($1::uuid[], $2::uuid[], $3::bigint[]) AS e(id, account_id, balance)
         UNION ALL
         SELECT id, $5, -$4, NULL FROM unnest($1::uuid[]) AS s(id)",
    )
    .bind(batch.operation_ids)
    .bind(batch.accounts)
    .bind(batch.balances)
    .bind(batch.points)
    .bind(issuance)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// One lot per credited operation, of what it took the balance above zero (see `add_lot`); the
/// accounts' balances are already credited.
pub async fn add_lots(
    tx: &mut Tx,
    accounts: &[Uuid],
    operations: &[Uuid],
    points: i64,
    expires_at: Option<DateTime<Utc>>,
) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO point_lots (account_id, operation_id, amount, remaining, expires_at)
         SELECT l.account_id, l.id, least($3, a.balance), least($3, a.balance), $4
         FROM unnest($1::uuid[], $2::uuid[]) AS l(account_id, id) JOIN accounts a ON a.id = l.account_id
         WHERE a.balance > 0",
    )
    .bind(accounts)
    .bind(operations)
    .bind(points)
    .bind(expires_at)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

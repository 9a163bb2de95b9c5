//! Tasks.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{
    domain::{TaskPriority, TaskStatus, TimelineKind},
    store::timeline,
};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct TaskRow {
    pub id: Uuid,
    pub title: String,
    pub description: String,
    pub assignee: String,
    pub due_at: Option<DateTime<Utc>>,
    pub priority: TaskPriority,
    pub status: TaskStatus,
    pub reminder_times: Vec<DateTime<Utc>>,
    pub party_id: Option<Uuid>,
    pub person_id: Option<Uuid>,
    pub client_ids: Vec<Uuid>,
    pub interaction_id: Option<Uuid>,
    pub case_id: Option<Uuid>,
    pub completed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

pub const COLUMNS: &str = "id, title, description, assignee, due_at, priority, status,
    reminder_times, party_id, person_id, client_ids, interaction_id, case_id, completed_at,
    created_at, updated_at, created_by, updated_by, version";

pub async fn insert(tx: &mut Tx, t: &TaskRow) -> sqlx::Result<TaskRow> {
    let row: TaskRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO tasks (id, title, description, assignee, due_at, priority, status,
             reminder_times, party_id, person_id, client_ids, interaction_id, case_id,
             created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14)
         RETURNING {COLUMNS}"
    )))
    .bind(t.id)
    .bind(&t.title)
    .bind(&t.description)
    .bind(&t.assignee)
    .bind(t.due_at)
    .bind(t.priority)
    .bind(t.status)
    .bind(&t.reminder_times)
    .bind(t.party_id)
    .bind(t.person_id)
    .bind(&t.client_ids)
    .bind(t.interaction_id)
    .bind(t.case_id)
    .bind(&t.created_by)
    .fetch_one(&mut **tx)
    .await?;
    // In the timelines of its client (both ids of a consumer) and its case, as of its creation.
    let owners: Vec<Uuid> = row.client_ids.iter().copied().chain(row.case_id).collect();
    timeline::place(
        tx,
        row.id,
        TimelineKind::Task,
        row.created_at,
        None,
        &owners,
    )
    .await?;
    Ok(row)
}

pub async fn get(conn: &mut PgConnection, id: Uuid) -> sqlx::Result<Option<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks WHERE id = $1"
    )))
    .bind(id)
    .fetch_optional(conn)
    .await
}

pub async fn lock(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

/// Writes the editable fields; a new due time may be announced overdue again.
pub async fn update(tx: &mut Tx, t: &TaskRow, by: &str) -> sqlx::Result<TaskRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET title = $2, description = $3, assignee = $4,
             overdue_announced = overdue_announced AND due_at IS NOT DISTINCT FROM $5,
             due_at = $5, priority = $6, status = $7, reminder_times = $8, completed_at = $9,
             updated_by = $10, updated_at = now(), version = version + 1
          WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(t.id)
    .bind(&t.title)
    .bind(&t.description)
    .bind(&t.assignee)
    .bind(t.due_at)
    .bind(t.priority)
    .bind(t.status)
    .bind(&t.reminder_times)
    .bind(t.completed_at)
    .bind(by)
    .fetch_one(&mut **tx)
    .await
}

/// What ListTasks filters by.
#[derive(Debug, Default)]
pub struct Filter {
    pub assignee: Option<String>,
    pub status: Option<TaskStatus>,
    pub overdue_only: bool,
    pub client: Option<Uuid>,
}

/// One page, soonest due first (no due time last), after `after` (the last task's due time, none
/// standing for infinity, and id).
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    after: Option<(Option<DateTime<Utc>>, Uuid)>,
    limit: i64,
) -> sqlx::Result<Vec<TaskRow>> {
    let (due, id) = after.unzip();
    let due = due.flatten();
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks
          WHERE ($1::text IS NULL OR assignee = $1)
            AND ($2::text IS NULL OR status = $2)
            AND (NOT $3 OR (status IN ('open', 'in_progress') AND due_at <= now()))
            AND ($4::uuid IS NULL OR client_ids @> ARRAY[$4])
            AND ($6::uuid IS NULL
                 OR (coalesce(due_at, 'infinity'), id) > (coalesce($5::timestamptz, 'infinity'), $6))
          ORDER BY coalesce(due_at, 'infinity'), id LIMIT $7"
    )))
    .bind(&filter.assignee)
    .bind(filter.status)
    .bind(filter.overdue_only)
    .bind(filter.client)
    .bind(due)
    .bind(id)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// Open tasks past their due time not yet announced, marked announced; at most `limit`.
pub async fn take_overdue(tx: &mut Tx, limit: i64) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE tasks SET overdue_announced = true
          WHERE id IN (SELECT id FROM tasks
                        WHERE NOT overdue_announced AND status IN ('open', 'in_progress')
                          AND due_at <= now()
                        ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED)
          RETURNING {COLUMNS}"
    )))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

pub async fn get_many(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<TaskRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM tasks WHERE id = ANY($1)"
    )))
    .bind(ids)
    .fetch_all(conn)
    .await
}

//! Notes about parties and persons.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::{domain::TimelineKind, store::timeline};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct NoteRow {
    pub id: Uuid,
    /// The party or person and its linked id.
    pub client_ids: Vec<Uuid>,
    pub party_id: Option<Uuid>,
    pub person_id: Option<Uuid>,
    pub interaction_id: Option<Uuid>,
    pub task_id: Option<Uuid>,
    pub case_id: Option<Uuid>,
    pub text: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub created_by: String,
    pub updated_by: String,
    pub version: i64,
}

const COLUMNS: &str = "id, client_ids, party_id, person_id, interaction_id, task_id, case_id, text,
    created_at, updated_at, created_by, updated_by, version";

pub async fn insert(tx: &mut Tx, n: &NoteRow) -> sqlx::Result<NoteRow> {
    let row: NoteRow = sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "INSERT INTO notes (id, party_id, person_id, interaction_id, task_id, case_id, text,
             client_ids, created_by, updated_by)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)
         RETURNING {COLUMNS}"
    )))
    .bind(n.id)
    .bind(n.party_id)
    .bind(n.person_id)
    .bind(n.interaction_id)
    .bind(n.task_id)
    .bind(n.case_id)
    .bind(&n.text)
    .bind(&n.client_ids)
    .bind(&n.created_by)
    .fetch_one(&mut **tx)
    .await?;
    // In the timelines of its client (both ids of a consumer) and its case.
    let owners: Vec<Uuid> = row.client_ids.iter().copied().chain(row.case_id).collect();
    timeline::place(
        tx,
        row.id,
        TimelineKind::Note,
        row.created_at,
        None,
        &owners,
    )
    .await?;
    Ok(row)
}

pub async fn lock(tx: &mut Tx, id: Uuid) -> sqlx::Result<Option<NoteRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM notes WHERE id = $1 FOR UPDATE"
    )))
    .bind(id)
    .fetch_optional(&mut **tx)
    .await
}

pub async fn set_text(tx: &mut Tx, id: Uuid, text: &str, by: &str) -> sqlx::Result<NoteRow> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "UPDATE notes SET text = $2, updated_by = $3, updated_at = now(), version = version + 1
          WHERE id = $1 RETURNING {COLUMNS}"
    )))
    .bind(id)
    .bind(text)
    .bind(by)
    .fetch_one(&mut **tx)
    .await
}

pub async fn delete(tx: &mut Tx, id: Uuid) -> sqlx::Result<()> {
    sqlx::query("DELETE FROM notes WHERE id = $1")
        .bind(id)
        .execute(&mut **tx)
        .await?;
    timeline::remove(tx, id, &[]).await
}

/// Whose notes a list shows: one of them.
#[derive(Debug, Clone, Copy)]
pub enum About {
    Party(Uuid),
    Person(Uuid),
    Interaction(Uuid),
}

/// One page, newest first, before `before`.
pub async fn list(
    conn: &mut PgConnection,
    about: About,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<NoteRow>> {
    let (column, id) = match about {
        About::Party(id) => ("party_id", id),
        About::Person(id) => ("person_id", id),
        About::Interaction(id) => ("interaction_id", id),
    };
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM notes WHERE {column} = $1 AND ($2::uuid IS NULL OR id < $2)
          ORDER BY id DESC LIMIT $3"
    )))
    .bind(id)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

pub async fn get_many(conn: &mut PgConnection, ids: &[Uuid]) -> sqlx::Result<Vec<NoteRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM notes WHERE id = ANY($1)"
    )))
    .bind(ids)
    .fetch_all(conn)
    .await
}

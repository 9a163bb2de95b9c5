//! The privacy audit log: append-only (the database refuses UPDATE, DELETE and TRUNCATE), written
//! in the transaction of the step it records, and holding no free text about a subject.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::{Subject, SubjectKind};

/// One entry to append.
pub struct Audit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: Option<Subject>,
    pub purpose: Option<&'a str>,
    pub details: serde_json::Value,
}

pub async fn append(tx: &mut Tx, entry: Audit<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO privacy_audit_log (actor, action, subject_kind, subject_id, purpose, details)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.subject.map(|s| s.kind))
    .bind(entry.subject.map(|s| s.id))
    .bind(entry.purpose)
    .bind(entry.details)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct AuditRow {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub actor: String,
    pub action: String,
    pub subject_kind: Option<SubjectKind>,
    pub subject_id: Option<Uuid>,
    pub purpose: Option<String>,
    pub details: serde_json::Value,
}

/// What a list of entries may be narrowed to.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Filter {
    pub subject: Option<Uuid>,
    pub action: Option<String>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

/// Entries newest first, after the keyset position `before`.
pub async fn list(
    conn: &mut PgConnection,
    filter: &Filter,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as(
        "SELECT id, at, actor, action, subject_kind, subject_id, purpose, details FROM privacy_audit_log
         WHERE ($1::uuid IS NULL OR subject_id = $1) AND ($2::text IS NULL OR action = $2)
           AND ($3::timestamptz IS NULL OR at >= $3) AND ($4::timestamptz IS NULL OR at < $4)
           AND ($5::bigint IS NULL OR id < $5)
         ORDER BY id DESC LIMIT $6",
    )
    .bind(filter.subject)
    .bind(&filter.action)
    .bind(filter.from)
    .bind(filter.to)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

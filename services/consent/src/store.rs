//! SQL for purposes, consent records, the current state and the privacy audit log. Every change
//! writes its audit entry and event in the same transaction.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::PgConnection;
use uuid::Uuid;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct PurposeRow {
    pub code: String,
    pub description: String,
    pub legal_basis: String,
    pub text_version: i32,
    pub text: String,
    pub minimum_consented_version: i32,
    pub created_at: DateTime<Utc>,
}

const PURPOSE_SELECT: &str = "SELECT p.code, p.description, p.legal_basis, p.text_version, t.text,
        p.minimum_consented_version, p.created_at
    FROM purposes p JOIN purpose_texts t ON t.purpose = p.code AND t.version = p.text_version";

pub async fn purposes(conn: &mut PgConnection) -> sqlx::Result<Vec<PurposeRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PURPOSE_SELECT} ORDER BY p.code"
    )))
    .fetch_all(conn)
    .await
}

pub async fn purpose(conn: &mut PgConnection, code: &str) -> sqlx::Result<Option<PurposeRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "{PURPOSE_SELECT} WHERE p.code = $1"
    )))
    .bind(code)
    .fetch_optional(conn)
    .await
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordRow {
    pub id: Uuid,
    pub subject_kind: String,
    pub subject_id: Uuid,
    pub purpose: String,
    pub status: String,
    pub channel: String,
    pub source_system: String,
    pub text_version: Option<i32>,
    pub reference: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

pub async fn insert_record(tx: &mut Tx, r: &RecordRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO consent_records (id, subject_kind, subject_id, purpose, status, channel, source_system,
             text_version, reference, expires_at, recorded_by, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(r.id)
    .bind(&r.subject_kind)
    .bind(r.subject_id)
    .bind(&r.purpose)
    .bind(&r.status)
    .bind(&r.channel)
    .bind(&r.source_system)
    .bind(r.text_version)
    .bind(&r.reference)
    .bind(r.expires_at)
    .bind(&r.recorded_by)
    .bind(r.recorded_at)
    .execute(&mut **tx)
    .await?;
    sqlx::query(
        "INSERT INTO consent_state (subject_id, purpose, record_id) VALUES ($1, $2, $3)
         ON CONFLICT (subject_id, purpose) DO UPDATE SET record_id = excluded.record_id",
    )
    .bind(r.subject_id)
    .bind(&r.purpose)
    .bind(r.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const RECORD_COLUMNS: &str =
    "r.id, r.subject_kind, r.subject_id, r.purpose, r.status, r.channel, r.source_system,
    r.text_version, r.reference, r.expires_at, r.recorded_by, r.recorded_at";

/// The record behind the current state of (subject, purpose): one primary-key read and a join.
pub async fn current(
    conn: &mut PgConnection,
    subject: Uuid,
    purpose: &str,
) -> sqlx::Result<Option<RecordRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM consent_state s JOIN consent_records r ON r.id = s.record_id
         WHERE s.subject_id = $1 AND s.purpose = $2"
    )))
    .bind(subject)
    .bind(purpose)
    .fetch_optional(conn)
    .await
}

pub async fn current_all(conn: &mut PgConnection, subject: Uuid) -> sqlx::Result<Vec<RecordRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM consent_state s JOIN consent_records r ON r.id = s.record_id
         WHERE s.subject_id = $1"
    )))
    .bind(subject)
    .fetch_all(conn)
    .await
}

pub async fn history(
    conn: &mut PgConnection,
    subject: Uuid,
    purpose: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<RecordRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {RECORD_COLUMNS} FROM consent_records r
         WHERE r.subject_id = $1 AND ($2::text IS NULL OR r.purpose = $2) AND ($3::uuid IS NULL OR r.id < $3)
         ORDER BY r.id DESC LIMIT $4"
    )))
    .bind(subject)
    .bind(purpose)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

/// One entry in the append-only privacy audit log.
pub struct Audit<'a> {
    pub actor: &'a str,
    pub action: &'a str,
    pub subject: Option<(&'a str, Uuid)>,
    pub purpose: Option<&'a str>,
    pub details: serde_json::Value,
}

pub async fn audit(tx: &mut Tx, entry: Audit<'_>) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO privacy_audit_log (actor, action, subject_kind, subject_id, purpose, details)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(entry.actor)
    .bind(entry.action)
    .bind(entry.subject.map(|(kind, _)| kind))
    .bind(entry.subject.map(|(_, id)| id))
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
    pub subject_kind: Option<String>,
    pub subject_id: Option<Uuid>,
    pub purpose: Option<String>,
    pub details: serde_json::Value,
}

pub async fn audit_log(
    conn: &mut PgConnection,
    subject: Option<Uuid>,
    before: Option<i64>,
    limit: i64,
) -> sqlx::Result<Vec<AuditRow>> {
    sqlx::query_as(
        "SELECT id, at, actor, action, subject_kind, subject_id, purpose, details FROM privacy_audit_log
         WHERE ($1::uuid IS NULL OR subject_id = $1) AND ($2::bigint IS NULL OR id < $2)
         ORDER BY id DESC LIMIT $3",
    )
    .bind(subject)
    .bind(before)
    .bind(limit)
    .fetch_all(conn)
    .await
}

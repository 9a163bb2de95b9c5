//! Consent records (append-only; the database refuses UPDATE and DELETE) and the current state,
//! one row per (subject, purpose) pointing at the latest record.

use chrono::{DateTime, Utc};
use crm_kit::store::Tx;
use sqlx::{FromRow, PgConnection, Row};
use uuid::Uuid;

use super::purposes::PurposeRow;
use crate::domain::{Channel, Latest, RecordStatus, Subject, SubjectKind};

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct RecordRow {
    pub id: Uuid,
    pub subject_kind: SubjectKind,
    pub subject_id: Uuid,
    pub purpose: String,
    pub status: RecordStatus,
    pub channel: Channel,
    pub source_system: String,
    pub text_version: Option<i32>,
    pub reference: String,
    pub expires_at: Option<DateTime<Utc>>,
    pub recorded_by: String,
    pub recorded_at: DateTime<Utc>,
}

impl RecordRow {
    pub fn subject(&self) -> Subject {
        Subject {
            kind: self.subject_kind,
            id: self.subject_id,
        }
    }

    pub fn latest(&self) -> Latest {
        Latest {
            status: self.status,
            expires_at: self.expires_at,
            text_version: self.text_version,
        }
    }
}

/// Appends the record and makes it the current one for its subject and purpose.
pub async fn insert(tx: &mut Tx, r: &RecordRow) -> sqlx::Result<()> {
    sqlx::query(
        "INSERT INTO consent_records (id, subject_kind, subject_id, purpose, status, channel, source_system,
             text_version, reference, expires_at, recorded_by, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(r.id)
    .bind(r.subject_kind)
    .bind(r.subject_id)
    .bind(&r.purpose)
    .bind(r.status)
    .bind(r.channel)
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
         ON CONFLICT (subject_id, purpose)
         DO UPDATE SET record_id = excluded.record_id, expiry_announced = false",
    )
    .bind(r.subject_id)
    .bind(&r.purpose)
    .bind(r.id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

const COLUMNS: &str =
    "r.id, r.subject_kind, r.subject_id, r.purpose, r.status, r.channel, r.source_system,
    r.text_version, r.reference, r.expires_at, r.recorded_by, r.recorded_at";

/// The purpose and the record behind the subject's current state for it, in one statement (so
/// in one snapshot): what a consent check reads. `None` when the purpose does not exist.
pub async fn check(
    conn: &mut PgConnection,
    subject: Uuid,
    purpose: &str,
) -> sqlx::Result<Option<(PurposeRow, Option<RecordRow>)>> {
    let row = sqlx::query(
        "SELECT p.code, p.description, p.legal_basis, p.text_version, t.text,
             p.minimum_consented_version, p.created_at, p.updated_at, p.version,
             r.id AS r_id, r.subject_kind AS r_subject_kind, r.subject_id AS r_subject_id,
             r.status AS r_status, r.channel AS r_channel, r.source_system AS r_source_system,
             r.text_version AS r_text_version, r.reference AS r_reference,
             r.expires_at AS r_expires_at, r.recorded_by AS r_recorded_by,
             r.recorded_at AS r_recorded_at
         FROM purposes p JOIN purpose_texts t ON t.purpose = p.code AND t.version = p.text_version
         LEFT JOIN consent_state s ON s.subject_id = $1 AND s.purpose = p.code
         LEFT JOIN consent_records r ON r.id = s.record_id
         WHERE p.code = $2",
    )
    .bind(subject)
    .bind(purpose)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let purpose = PurposeRow::from_row(&row)?;
    let record = match row.try_get::<Option<Uuid>, _>("r_id")? {
        None => None,
        Some(id) => Some(RecordRow {
            id,
            subject_kind: row.try_get("r_subject_kind")?,
            subject_id: row.try_get("r_subject_id")?,
            purpose: purpose.code.clone(),
            status: row.try_get("r_status")?,
            channel: row.try_get("r_channel")?,
            source_system: row.try_get("r_source_system")?,
            text_version: row.try_get("r_text_version")?,
            reference: row.try_get("r_reference")?,
            expires_at: row.try_get("r_expires_at")?,
            recorded_by: row.try_get("r_recorded_by")?,
            recorded_at: row.try_get("r_recorded_at")?,
        }),
    };
    Ok(Some((purpose, record)))
}

/// The record behind the current state of (subject, purpose): one primary-key read and a join.
pub async fn current(
    conn: &mut PgConnection,
    subject: Uuid,
    purpose: &str,
) -> sqlx::Result<Option<RecordRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM consent_state s JOIN consent_records r ON r.id = s.record_id
         WHERE s.subject_id = $1 AND s.purpose = $2"
    )))
    .bind(subject)
    .bind(purpose)
    .fetch_optional(conn)
    .await
}

pub async fn current_all(conn: &mut PgConnection, subject: Uuid) -> sqlx::Result<Vec<RecordRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM consent_state s JOIN consent_records r ON r.id = s.record_id
         WHERE s.subject_id = $1"
    )))
    .bind(subject)
    .fetch_all(conn)
    .await
}

/// A subject's records, newest first, after the keyset position `before`.
pub async fn history(
    conn: &mut PgConnection,
    subject: Uuid,
    purpose: Option<&str>,
    before: Option<Uuid>,
    limit: i64,
) -> sqlx::Result<Vec<RecordRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM consent_records r
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

/// Current grants whose expiry passed and was not announced yet, locked; SKIP LOCKED lets
/// replicas share them.
pub async fn lock_newly_expired(tx: &mut Tx, limit: i64) -> sqlx::Result<Vec<RecordRow>> {
    sqlx::query_as(sqlx::AssertSqlSafe(format!(
        "SELECT {COLUMNS} FROM consent_state s JOIN consent_records r ON r.id = s.record_id
         WHERE r.status = 'granted' AND r.expires_at <= now() AND NOT s.expiry_announced
         ORDER BY r.expires_at LIMIT $1 FOR UPDATE OF s SKIP LOCKED"
    )))
    .bind(limit)
    .fetch_all(&mut **tx)
    .await
}

pub async fn mark_expiry_announced(tx: &mut Tx, subject: Uuid, purpose: &str) -> sqlx::Result<()> {
    sqlx::query(
        "UPDATE consent_state SET expiry_announced = true WHERE subject_id = $1 AND purpose = $2",
    )
    .bind(subject)
    .bind(purpose)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
